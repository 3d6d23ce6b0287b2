//! The MQTT session over embedded-tls.

use core::fmt;

use coffre_device::link::{Acked, Opened};
use coffre_mqtt::{Event, QoS, ReasonCode, Session};
use embedded_io_async::{Read, Write};
use embedded_tls::{
    Aes128GcmSha256, CryptoProvider, TlsConfig, TlsConnection, TlsContext, TlsError,
};

use crate::timer::{within, Timer};

/// Size of the TLS record read buffer: a full 16 KiB record and its
/// overhead (mosquitto does not negotiate a smaller fragment length).
pub const RECORD_READ_BUF: usize = 16_640;
/// Size of the TLS record write buffer (MQTT packets of a sensor are small).
pub const RECORD_WRITE_BUF: usize = 4096;

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum FirmwareError {
    /// TLS failed (handshake refused, alert, record error, socket error).
    Tls(TlsError),
    /// The MQTT session failed (refusal, timeout, protocol error).
    Session(coffre_mqtt::Error),
    /// The broker closed the connection.
    Closed,
    /// A TLS step took longer than the session's response timeout (the
    /// MQTT steps' own deadlines come back as [`FirmwareError::Session`]).
    Timeout {
        /// What did not finish: "the TLS handshake" or "the TLS close".
        waiting_for: &'static str,
        /// The time limit, ms.
        after_ms: u64,
    },
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirmwareError::Tls(e) => write!(f, "TLS: {e:?}"),
            FirmwareError::Session(e) => write!(f, "MQTT: {e}"),
            FirmwareError::Closed => f.write_str("the broker closed the connection"),
            FirmwareError::Timeout {
                waiting_for,
                after_ms,
            } => write!(f, "{waiting_for} did not finish within {after_ms} ms"),
        }
    }
}

impl From<TlsError> for FirmwareError {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::ConnectionClosed => FirmwareError::Closed,
            other => FirmwareError::Tls(other),
        }
    }
}

/// One MQTT session over TLS 1.3 with embedded-tls.
pub struct Firmware<'a, S>
where
    S: Read + Write,
{
    tls: TlsConnection<'a, S, Aes128GcmSha256>,
    session: Session,
    buf: [u8; 512],
}

impl<'a, S> Firmware<'a, S>
where
    S: Read + Write,
{
    /// TLS handshake over `socket` (mutual: `crypto` sends the device
    /// certificate and signs), then CONNECT and CONNACK.
    ///
    /// `server_name` is checked against the broker certificate's names.
    /// The handshake must finish within the session's response timeout,
    /// and the CONNACK arrive within it after the CONNECT, by `timer`.
    ///
    /// `first` = (topic, payload, QoS) is sent right behind the CONNECT
    /// when the session allows it, as the Linux driver does
    /// (`coffre_device::link::Connection::open_with_first`): one round trip
    /// fewer for a device that connects to publish. The third value says
    /// what became of it: `Some(Some(id))`, it went out as QoS 1 packet
    /// `id`, whose PUBACK [`Firmware::wait_puback`] waits for (it often
    /// comes with the CONNACK); `Some(None)`, it went out at QoS 0; `None`,
    /// it did not go out (publish it after the CONNACK).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    pub async fn connect<P, T>(
        socket: S,
        read_buf: &'a mut [u8],
        write_buf: &'a mut [u8],
        server_name: &str,
        crypto: P,
        session: Session,
        timer: &T,
        first: Option<(&str, &[u8], QoS)>,
    ) -> Result<(Self, Opened, Option<Option<u16>>), FirmwareError>
    where
        P: CryptoProvider<CipherSuite = Aes128GcmSha256>,
        T: Timer,
    {
        let config = TlsConfig::new().with_server_name(server_name);
        let mut tls = TlsConnection::new(socket, read_buf, write_buf);
        let limit = session.config().response_timeout_ms;
        let deadline = timer.sleep_until(timer.now_ms().saturating_add(limit));
        within(deadline, tls.open(TlsContext::new(&config, crypto)))
            .await
            .ok_or(FirmwareError::Timeout {
                waiting_for: "the TLS handshake",
                after_ms: limit,
            })??;
        let mut fw = Firmware {
            tls,
            session,
            buf: [0; 512],
        };
        fw.session
            .connect(timer.now_ms())
            .map_err(FirmwareError::Session)?;
        let sent = first.and_then(|(topic, payload, qos)| {
            fw.session
                .publish(timer.now_ms(), topic, payload, qos, false)
                .ok()
        });
        let opened = fw.wait(timer, Opened::from_event).await?;
        Ok((fw, opened, sent))
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    async fn flush(&mut self) -> Result<(), FirmwareError> {
        if let Some(bytes) = self.session.poll_transmit() {
            let mut at = 0;
            while at < bytes.len() {
                at += self.tls.write(&bytes[at..]).await?;
            }
            self.tls.flush().await?;
        }
        Ok(())
    }

    /// Serve the session until `pick` accepts an event. A read waits at
    /// most until the session's next deadline; then the session decides
    /// (a late CONNACK or PUBACK ends it with a timeout error).
    async fn wait<R>(
        &mut self,
        timer: &impl Timer,
        mut pick: impl FnMut(Event) -> Option<R>,
    ) -> Result<R, FirmwareError> {
        loop {
            self.flush().await?;
            while let Some(e) = self.session.poll_event() {
                if let Some(t) = pick(e) {
                    return Ok(t);
                }
            }
            self.session
                .handle_timeout(timer.now_ms())
                .map_err(FirmwareError::Session)?;
            self.flush().await?;
            let deadline = self.session.poll_timeout();
            let read = self.tls.read(&mut self.buf);
            let n = match deadline {
                Some(at) => match within(timer.sleep_until(at), read).await {
                    Some(r) => r?,
                    // The deadline came first: back to handle_timeout.
                    None => continue,
                },
                None => read.await?,
            };
            if n == 0 {
                return Err(FirmwareError::Closed);
            }
            self.session
                .handle_incoming(timer.now_ms(), &self.buf[..n])
                .map_err(FirmwareError::Session)?;
        }
    }

    /// Publish; for QoS 1, wait for the PUBACK.
    pub async fn publish(
        &mut self,
        timer: &impl Timer,
        topic: &str,
        payload: &[u8],
        qos: QoS,
    ) -> Result<Acked, FirmwareError> {
        let id = self
            .session
            .publish(timer.now_ms(), topic, payload, qos, false)
            .map_err(FirmwareError::Session)?;
        let Some(id) = id else {
            self.flush().await?;
            return Ok(Acked {
                packet_id: None,
                reason: ReasonCode::SUCCESS,
                reason_string: None,
                rtt_ms: 0,
            });
        };
        self.wait_puback(timer, id).await
    }

    /// Wait for the PUBACK of QoS 1 packet `id`.
    pub async fn wait_puback(
        &mut self,
        timer: &impl Timer,
        id: u16,
    ) -> Result<Acked, FirmwareError> {
        self.wait(timer, |e| Acked::of_puback(e, id)).await
    }

    /// DISCONNECT (reason 0x00), then TLS `close_notify` within the
    /// session's response timeout; the socket comes back.
    pub async fn disconnect(mut self, timer: &impl Timer) -> Result<S, FirmwareError> {
        self.session
            .disconnect(timer.now_ms(), ReasonCode::SUCCESS)
            .map_err(FirmwareError::Session)?;
        self.flush().await?;
        let limit = self.session.config().response_timeout_ms;
        let deadline = timer.sleep_until(timer.now_ms().saturating_add(limit));
        within(deadline, self.tls.close())
            .await
            .ok_or(FirmwareError::Timeout {
                waiting_for: "the TLS close",
                after_ms: limit,
            })?
            .map_err(|(_, e)| FirmwareError::from(e))
    }
}
