//! coffre firmware for the ESP32-C3: the device core of coffre-device and
//! coffre-firmware on esp-hal, with the Wi-Fi station of esp-radio,
//! embassy-net (DHCP, DNS) and esp-rtos's embassy executor.
//!
//! Boot: the lab's five steps on the serial log (probe 0x35, wake and
//! Info, config zone, locks, identity), then the identity checked against
//! the device certificate, then Wi-Fi, the time (SNTP), and the publish
//! loop: a reading every `interval-secs` on `m5go/env` at QoS 1, numbered,
//! kept in RAM until the broker acknowledges it, reconnection with
//! backoff, every network call under a time limit, and a watchdog that
//! resets the board when the loop stops turning.
//!
//! All decisions are made by host-tested code (coffre-device,
//! coffre-firmware: settings, boot, session, schedule, SNTP); this file
//! wires them to the hardware.
#![no_std]
#![no_main]

extern crate alloc;

mod board;

use alloc::format;
use alloc::string::String;
use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use coffre_device::boot::{BootOptions, KeyMode};
use coffre_device::reading::EnvSensors;
use coffre_device::{Backoff, Clock, MemoryQueue, Reading, ReadingQueue, SensorSource};
use coffre_driver::Atecc;
use coffre_firmware::time::{sntp_parse, sntp_request, SNTP_PACKET};
use coffre_firmware::{
    set_unix_time, DeviceCrypto, Firmware, KeySigner, Plan, Settings, Step, RECORD_READ_BUF,
    RECORD_WRITE_BUF,
};
use coffre_mqtt::{Config as MqttConfig, MqttVersion, QoS, Session};
use embassy_executor::Spawner;
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::TcpSocket;
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_hal_bus::i2c::RefCellDevice;
use esp_hal::clock::CpuClock;
use esp_hal::delay::Delay;
use esp_hal::i2c::master::{Config as I2cConfig, I2c};
use esp_hal::rng::{Rng, Trng, TrngSource};
use esp_hal::time::Rate;
use esp_hal::timer::timg::{MwdtStage, TimerGroup, Wdt};
use esp_hal::Blocking;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, WifiController,
};
use log::{error, info, warn};
use static_cell::StaticCell;
use zeroize::Zeroize;

use esp_backtrace as _;

esp_bootloader_esp_idf::esp_app_desc!();

/// The settings file (`coffre firmware config`), chosen at build time by
/// scripts/firmware.sh (the example for the emulator's test PKI when
/// there is none).
const SETTINGS: &str = include_str!(env!("COFFRE_FIRMWARE_SETTINGS"));
/// The Wi-Fi password, from the build's environment; never in a file.
const WIFI_PASSWORD: Option<&str> = option_env!("COFFRE_WIFI_PASSWORD");

/// Readings kept in RAM while the broker is away (older ones dropped).
const MAX_QUEUED: usize = 64;
/// Time limits of the network calls.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);
const PUBLISH_LIMIT: Duration = Duration::from_secs(15);
const SNTP_LIMIT: Duration = Duration::from_secs(5);
/// TCP socket buffers: TLS records are assembled in the record buffers,
/// so these only smooth the flow.
const TCP_RX: usize = 2048;
const TCP_TX: usize = 2048;

type Bus = RefCell<I2c<'static, Blocking>>;
type Dev = RefCellDevice<'static, I2c<'static, Blocking>>;

/// The device core's clock: milliseconds since boot.
struct Uptime;

impl Clock for Uptime {
    fn now_ms(&self) -> u64 {
        Instant::now().as_millis()
    }
}

/// The device core's waits (handshake, CONNACK, PUBACK, keep alive) end at
/// the session's deadlines, on embassy-time's timer.
impl coffre_firmware::Timer for Uptime {
    fn sleep_until(&self, at_ms: u64) -> impl core::future::Future<Output = ()> {
        Timer::at(Instant::from_millis(at_ms))
    }
}

/// Wall-clock time: Unix seconds at boot (from SNTP or the settings'
/// lower bound) plus the uptime.
#[derive(Clone, Copy)]
struct Wall {
    unix_at_boot_ms: u64,
}

impl Wall {
    fn unix_micros(&self) -> i64 {
        ((self.unix_at_boot_ms + Uptime.now_ms()) * 1000) as i64
    }

    fn publish(&self) {
        set_unix_time((self.unix_at_boot_ms + Uptime.now_ms()) / 1000);
    }
}

/// Stop for good (the board stays up so the log can be read; the
/// watchdog is never started before this point).
async fn halt(why: &str) -> ! {
    loop {
        error!("{why}");
        Timer::after(Duration::from_secs(60)).await;
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // Heap (Wi-Fi's buffers, the MQTT session, readings waiting): the RAM
    // the second-stage bootloader used, given back after boot, and a part
    // of .bss.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 40 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    info!(
        "coffre firmware {} on {}",
        env!("CARGO_PKG_VERSION"),
        board::CHIP
    );
    if cfg!(feature = "lab") {
        warn!("LAB BUILD: the TLS key is read from slot 8 into RAM for each handshake (zeroized after it). Never ship this image.");
    }
    let settings = match Settings::parse(SETTINGS) {
        Ok(s) => s,
        Err(e) => halt(&format!("{e}")).await,
    };
    info!(
        "device {}, broker {}:{} ({}), Wi-Fi \"{}\", a reading every {} s on {}",
        settings.id,
        settings.broker_host,
        settings.broker_port,
        settings.server_name,
        settings.wifi_ssid,
        settings.interval_secs,
        settings.topic
    );

    // The Grove bus: the secure element and the ENV unit share it.
    let (sda, scl) = grove_pins!(peripherals);
    let i2c = match I2c::new(
        peripherals.I2C0,
        I2cConfig::default().with_frequency(Rate::from_khz(board::I2C_KHZ)),
    ) {
        Ok(i2c) => i2c.with_sda(sda).with_scl(scl),
        Err(e) => halt(&format!("I2C: {e:?}")).await,
    };
    static BUS: StaticCell<Bus> = StaticCell::new();
    let bus: &'static Bus = BUS.init(RefCell::new(i2c));

    // The five boot steps.
    if settings.key == KeyMode::Lab && !cfg!(feature = "lab") {
        halt("the settings ask for lab mode (key = lab) and this image is built without the `lab` feature: refusing").await;
    }
    let opts = BootOptions {
        mode: settings.key,
        allow_unlocked: false,
        io_key: None,
    };
    let chip = Atecc::new(RefCellDevice::new(bus), Delay::new(), settings.chip_address);
    let booted =
        coffre_device::boot::boot(chip, &opts, &mut |step, msg| info!("[boot {step}/5] {msg}"));
    let (key, report) = match booted {
        Ok(k) => k,
        Err(e) => halt(&format!("not going online: {e}")).await,
    };
    drop(key);
    info!(
        "{} serial {:02X?}: identity loaded",
        report.device, report.serial
    );

    // The identity must be the certificate's.
    let mut signer = match new_signer(bus, &settings) {
        Ok(s) => s,
        Err(e) => halt(&format!("not going online: {e}")).await,
    };
    if let Err(e) = signer.matches_certificate(&settings.cert_der) {
        halt(&format!("not going online: {e}")).await;
    }
    drop(signer);
    info!("the device certificate names the key that signs");

    let mut sensors = EnvSensors::new(RefCellDevice::new(bus), Delay::new());

    if settings.example {
        warn!("these are the EXAMPLE settings (the emulator's test PKI): not going online. Write yours with `coffre firmware config` and rebuild (make firmware).");
        loop {
            match sensors.measure() {
                Ok(m) => info!("offline reading: {m:?}"),
                Err(e) => warn!("reading failed: {e}"),
            }
            Timer::after(Duration::from_secs(u64::from(settings.interval_secs))).await;
        }
    }
    // black_box: the image is the same code with or without a password
    // built in (the figures and `make test` build all of it).
    let Some(password) = core::hint::black_box(WIFI_PASSWORD) else {
        halt("no Wi-Fi password was built in: build with COFFRE_WIFI_PASSWORD set (empty for an open network)").await;
    };

    // Randomness: the TRNG (SAR ADC entropy, then the radio's).
    let _entropy = TrngSource::new(peripherals.RNG, peripherals.ADC1);
    let Ok(mut trng) = Trng::try_new() else {
        halt("the true random number generator did not start").await;
    };

    // Wi-Fi station and the network stack.
    let auth = if password.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        match password.try_into() {
            Ok(p) => AuthenticationMethodConfig::Wpa2Personal(p),
            Err(_) => halt("the Wi-Fi password is too long").await,
        }
    };
    let Ok(ssid) = settings.wifi_ssid.as_str().try_into() else {
        halt("the Wi-Fi network name is too long").await;
    };
    let station = WifiConfig::Station(
        StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(auth),
    );
    let controller = match WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(station),
    ) {
        Ok(c) => c,
        Err(e) => halt(&format!("Wi-Fi: {e:?}")).await,
    };
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let seed = (u64::from(Rng::new().random()) << 32) | u64::from(Rng::new().random());
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(wifi_task(controller).unwrap());
    spawner.spawn(net_task(runner).unwrap());
    stack.wait_config_up().await;
    if let Some(c) = stack.config_v4() {
        info!("network up: {}", c.address);
    }

    // The time the broker certificate's dates are checked against.
    let wall = wall_clock(stack, &settings, trng.random()).await;

    // The watchdog: the loop below feeds it at least every interval; a
    // stuck driver or network call resets the board.
    let mut wdt = TimerGroup::new(peripherals.TIMG1).wdt;
    let limit = u64::from(settings.interval_secs) + 2 * CONNECT_LIMIT.as_secs() + 30;
    wdt.set_timeout(MwdtStage::Stage0, esp_hal::time::Duration::from_secs(limit));
    wdt.enable();
    info!("watchdog: {limit} s");

    // The record and socket buffers, static: their size is in the image's
    // .bss (see the README's figures).
    static RECORD_READ: StaticCell<[u8; RECORD_READ_BUF]> = StaticCell::new();
    static RECORD_WRITE: StaticCell<[u8; RECORD_WRITE_BUF]> = StaticCell::new();
    static SOCKET_RX: StaticCell<[u8; TCP_RX]> = StaticCell::new();
    static SOCKET_TX: StaticCell<[u8; TCP_TX]> = StaticCell::new();
    let mut bufs = Buffers {
        record_read: RECORD_READ.init([0; RECORD_READ_BUF]),
        record_write: RECORD_WRITE.init([0; RECORD_WRITE_BUF]),
        rx: SOCKET_RX.init([0; TCP_RX]),
        tx: SOCKET_TX.init([0; TCP_TX]),
    };

    let mut queue = MemoryQueue::new();
    let mut plan = Plan::new(
        Uptime.now_ms(),
        core::time::Duration::from_secs(u64::from(settings.interval_secs)),
        Backoff::default(),
        MAX_QUEUED,
    );
    let mut run = Run {
        settings: &settings,
        bus,
        sensors: &mut sensors,
        queue: &mut queue,
        plan: &mut plan,
        wall,
        wdt: &mut wdt,
    };
    loop {
        run.wdt.feed();
        match run.plan.next(Uptime.now_ms(), false, run.queue.len()) {
            Step::Measure => run.measure(),
            Step::Wait { until_ms } => Timer::at(Instant::from_millis(until_ms)).await,
            Step::Publish | Step::Connect => {
                let outcome = run.online(stack, &mut bufs, &mut trng).await;
                let delay = run.plan.failed(Uptime.now_ms(), trng.random());
                warn!(
                    "{outcome}; next attempt in {} ms (attempt {})",
                    delay.as_millis(),
                    run.plan.failures()
                );
            }
        }
    }
}

/// The signer of the settings' key mode: the chip (offload), or the lab
/// key read from slot 8 now (zeroized when the signer is dropped).
fn new_signer(bus: &'static Bus, settings: &Settings) -> Result<KeySigner<Dev, Delay>, String> {
    let chip = Atecc::new(RefCellDevice::new(bus), Delay::new(), settings.chip_address);
    match settings.key {
        KeyMode::Offload { slot } => Ok(KeySigner::Chip { chip, slot }),
        KeyMode::Lab => {
            let mut chip = chip;
            let mut slot8 = [0u8; coffre_device::boot::SLOT8_SIZE];
            let read = chip.read_slot(8, &mut slot8);
            let signer = read
                .map_err(|e| format!("reading slot 8: {e}"))
                .and_then(|_| {
                    KeySigner::lab_from_slot8(&slot8)
                        .ok_or_else(|| String::from("slot 8 holds no P-256 PKCS#8 key"))
                });
            slot8.zeroize();
            signer
        }
    }
}

/// SNTP when it answers, else the settings' `issued-at` (a lower bound:
/// a certificate that expired since then is not noticed).
async fn wall_clock(stack: Stack<'static>, settings: &Settings, nonce: u32) -> Wall {
    let boot_ms = Uptime.now_ms();
    if let Some(server) = settings.ntp.as_deref() {
        match with_timeout(SNTP_LIMIT, sntp(stack, server, u64::from(nonce) | 1 << 40)).await {
            Ok(Ok(unix)) => {
                info!("time: {unix} (SNTP {server})");
                let wall = Wall {
                    unix_at_boot_ms: unix * 1000 - boot_ms,
                };
                wall.publish();
                return wall;
            }
            Ok(Err(e)) => warn!("SNTP {server}: {e}"),
            Err(_) => warn!("SNTP {server}: no answer in {} s", SNTP_LIMIT.as_secs()),
        }
    }
    warn!(
        "time: {} from the settings (issued-at), a lower bound: certificate expiry is checked against it",
        settings.issued_at
    );
    let wall = Wall {
        unix_at_boot_ms: (settings.issued_at * 1000).saturating_sub(boot_ms),
    };
    wall.publish();
    wall
}

async fn sntp(stack: Stack<'static>, server: &str, nonce: u64) -> Result<u64, String> {
    let addrs = stack
        .dns_query(server, DnsQueryType::A)
        .await
        .map_err(|e| format!("DNS: {e:?}"))?;
    let addr = addrs.first().ok_or("DNS: no address")?;
    let (mut rx_meta, mut tx_meta) = ([PacketMetadata::EMPTY; 2], [PacketMetadata::EMPTY; 2]);
    let (mut rx, mut tx) = ([0u8; 128], [0u8; 128]);
    let mut socket = UdpSocket::new(stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
    socket.bind(0).map_err(|e| format!("UDP: {e:?}"))?;
    socket
        .send_to(&sntp_request(nonce), (*addr, 123))
        .await
        .map_err(|e| format!("UDP: {e:?}"))?;
    let mut answer = [0u8; SNTP_PACKET];
    let (n, _) = socket
        .recv_from(&mut answer)
        .await
        .map_err(|e| format!("UDP: {e:?}"))?;
    sntp_parse(&answer[..n], nonce).map_err(|e| format!("{e}"))
}

struct Buffers {
    record_read: &'static mut [u8; RECORD_READ_BUF],
    record_write: &'static mut [u8; RECORD_WRITE_BUF],
    rx: &'static mut [u8; TCP_RX],
    tx: &'static mut [u8; TCP_TX],
}

struct Run<'r> {
    settings: &'r Settings,
    bus: &'static Bus,
    sensors: &'r mut EnvSensors<Dev, Delay>,
    queue: &'r mut MemoryQueue,
    plan: &'r mut Plan,
    wall: Wall,
    wdt: &'r mut Wdt<esp_hal::peripherals::TIMG1<'static>>,
}

impl Run<'_> {
    /// Take a reading, number it, queue it (dropping the oldest past the
    /// bound).
    fn measure(&mut self) {
        let now = Uptime.now_ms();
        match self.sensors.measure() {
            Ok(m) => {
                let seq = self.queue.next_seq();
                let r =
                    Reading::at_unix_micros(&self.settings.id, seq, self.wall.unix_micros(), &m);
                let _ = self.queue.push(seq, r.to_json());
                for _ in 0..self.plan.excess(self.queue.len()) {
                    if let Some(old) = self.queue.front().map(|r| r.seq) {
                        warn!("queue full: reading {old} dropped unsent");
                        let _ = self.queue.ack(old);
                    }
                }
            }
            Err(e) => warn!("reading skipped: {e}"),
        }
        self.plan.measured(now);
    }

    /// Connect, then publish and measure until the connection fails;
    /// returns why it ended.
    async fn online(
        &mut self,
        stack: Stack<'static>,
        bufs: &mut Buffers,
        trng: &mut Trng,
    ) -> String {
        let s = self.settings;
        let addr = match resolve(stack, &s.broker_host).await {
            Ok(a) => a,
            Err(e) => return e,
        };
        // The chip must answer before the handshake: embedded-tls cannot
        // be told that a signature failed.
        let mut signer = match new_signer(self.bus, s) {
            Ok(k) => k,
            Err(e) => return e,
        };
        if signer.check().is_err() {
            return String::from("the secure element does not answer: not connecting");
        }
        self.wall.publish();
        let mut socket = TcpSocket::new(stack, &mut bufs.rx[..], &mut bufs.tx[..]);
        socket.set_timeout(Some(PUBLISH_LIMIT));
        let t0 = Uptime.now_ms();
        let to = SocketAddrV4::new(addr, s.broker_port);
        if let Err(e) = with_timeout(CONNECT_LIMIT, socket.connect(to))
            .await
            .unwrap_or(Err(embassy_net::tcp::ConnectError::TimedOut))
        {
            return format!("TCP {addr}:{}: {e:?}", s.broker_port);
        }
        let mut crypto = DeviceCrypto::new(&mut *trng, &s.ca_der, &s.cert_der, signer);
        let mut mqtt = MqttConfig::new(s.id.as_str(), MqttVersion::V5);
        mqtt.keep_alive_secs = s.keep_alive_secs;
        // The oldest reading rides with the CONNECT (one round trip fewer
        // per connection); its PUBACK is then awaited, not a second copy
        // sent.
        let first = self.queue.front().cloned();
        let connect = Firmware::connect(
            socket,
            &mut bufs.record_read[..],
            &mut bufs.record_write[..],
            &s.server_name,
            &mut crypto,
            Session::new(mqtt),
            &Uptime,
            first
                .as_ref()
                .map(|r| (s.topic.as_str(), r.payload.as_bytes(), QoS::AtLeastOnce)),
        );
        let connected = with_timeout(CONNECT_LIMIT, connect).await;
        let signatures = crypto.signatures();
        // Lab mode: the key leaves RAM here (SigningKey zeroizes on drop).
        drop(crypto);
        let (mut fw, mut in_flight) = match connected {
            Ok(Ok((fw, _, sent))) => (fw, sent.flatten().zip(first.map(|r| r.seq))),
            Ok(Err(e)) => {
                return match signatures.failure {
                    Some(f) => format!("TLS handshake: the secure element failed to sign ({f:?})"),
                    None => format!("connecting: {e}"),
                }
            }
            Err(_) => return format!("connecting: no CONNACK in {} s", CONNECT_LIMIT.as_secs()),
        };
        self.plan.connected();
        info!(
            "connected to {}:{} in {} ms (TLS 1.3, CertificateVerify signed by {})",
            s.broker_host,
            s.broker_port,
            Uptime.now_ms() - t0,
            if s.key == KeyMode::Lab {
                "the slot-8 key"
            } else {
                "the chip"
            }
        );
        loop {
            self.wdt.feed();
            match self.plan.next(Uptime.now_ms(), true, self.queue.len()) {
                Step::Measure => self.measure(),
                Step::Wait { until_ms } => Timer::at(Instant::from_millis(until_ms)).await,
                Step::Connect => {}
                Step::Publish => {
                    let Some(r) = self.queue.front().cloned() else {
                        continue;
                    };
                    let sent = async {
                        match in_flight.take() {
                            Some((id, seq)) if seq == r.seq => fw.wait_puback(&Uptime, id).await,
                            _ => {
                                let payload = r.payload.as_bytes();
                                fw.publish(&Uptime, &s.topic, payload, QoS::AtLeastOnce)
                                    .await
                            }
                        }
                    };
                    match with_timeout(PUBLISH_LIMIT, sent).await {
                        Ok(Ok(ack)) if ack.reason.0 < 0x80 => {
                            info!("reading {} acknowledged in {} ms", r.seq, ack.rtt_ms);
                            let _ = self.queue.ack(r.seq);
                        }
                        Ok(Ok(ack)) => {
                            // Refused (not authorized, quota): dropped so
                            // that one reading does not block the others.
                            warn!(
                                "reading {} refused by the broker (reason 0x{:02X}); dropped",
                                r.seq, ack.reason.0
                            );
                            let _ = self.queue.ack(r.seq);
                        }
                        Ok(Err(e)) => return format!("publishing reading {}: {e}", r.seq),
                        Err(_) => {
                            return format!(
                                "publishing reading {}: no PUBACK in {} s",
                                r.seq,
                                PUBLISH_LIMIT.as_secs()
                            )
                        }
                    }
                }
            }
        }
    }
}

async fn resolve(stack: Stack<'static>, host: &str) -> Result<Ipv4Addr, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let found = with_timeout(SNTP_LIMIT, stack.dns_query(host, DnsQueryType::A)).await;
    match found {
        Ok(Ok(addrs)) => addrs
            .iter()
            .find_map(|a| match IpAddr::from(*a) {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| format!("DNS {host}: no IPv4 address")),
        Ok(Err(e)) => Err(format!("DNS {host}: {e:?}")),
        Err(_) => Err(format!("DNS {host}: no answer")),
    }
}

#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                info!("Wi-Fi connected");
                let why = controller.wait_for_disconnect_async().await;
                warn!("Wi-Fi disconnected: {why:?}");
            }
            Err(e) => warn!("Wi-Fi: {e:?}"),
        }
        Timer::after(Duration::from_secs(5)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
