//! The MQTT session over embedded-tls.

use core::fmt;

use coffre_device::link::{Acked, Opened};
use coffre_device::Clock;
use coffre_mqtt::{Event, QoS, ReasonCode, Session};
use embedded_io_async::{Read, Write};
use embedded_tls::{
    Aes128GcmSha256, CryptoProvider, TlsConfig, TlsConnection, TlsContext, TlsError,
};

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
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirmwareError::Tls(e) => write!(f, "TLS: {e:?}"),
            FirmwareError::Session(e) => write!(f, "MQTT: {e}"),
            FirmwareError::Closed => f.write_str("the broker closed the connection"),
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
    pub async fn connect<P>(
        socket: S,
        read_buf: &'a mut [u8],
        write_buf: &'a mut [u8],
        server_name: &str,
        crypto: P,
        session: Session,
        clock: &dyn Clock,
    ) -> Result<(Self, Opened), FirmwareError>
    where
        P: CryptoProvider<CipherSuite = Aes128GcmSha256>,
    {
        let config = TlsConfig::new().with_server_name(server_name);
        let mut tls = TlsConnection::new(socket, read_buf, write_buf);
        tls.open(TlsContext::new(&config, crypto)).await?;
        let mut fw = Firmware {
            tls,
            session,
            buf: [0; 512],
        };
        fw.session
            .connect(clock.now_ms())
            .map_err(FirmwareError::Session)?;
        let opened = fw.wait(clock, Opened::from_event).await?;
        Ok((fw, opened))
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

    /// Serve the session until `pick` accepts an event.
    async fn wait<T>(
        &mut self,
        clock: &dyn Clock,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> Result<T, FirmwareError> {
        loop {
            self.flush().await?;
            while let Some(e) = self.session.poll_event() {
                if let Some(t) = pick(e) {
                    return Ok(t);
                }
            }
            self.session
                .handle_timeout(clock.now_ms())
                .map_err(FirmwareError::Session)?;
            self.flush().await?;
            let n = self.tls.read(&mut self.buf).await?;
            if n == 0 {
                return Err(FirmwareError::Closed);
            }
            self.session
                .handle_incoming(clock.now_ms(), &self.buf[..n])
                .map_err(FirmwareError::Session)?;
        }
    }

    /// Publish; for QoS 1, wait for the PUBACK.
    pub async fn publish(
        &mut self,
        clock: &dyn Clock,
        topic: &str,
        payload: &[u8],
        qos: QoS,
    ) -> Result<Acked, FirmwareError> {
        let id = self
            .session
            .publish(clock.now_ms(), topic, payload, qos, false)
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
        self.wait(clock, |e| match e {
            Event::PubAck {
                packet_id,
                reason,
                reason_string,
                rtt_ms,
            } if packet_id == id => Some(Acked {
                packet_id: Some(id),
                reason,
                reason_string,
                rtt_ms,
            }),
            _ => None,
        })
        .await
    }

    /// DISCONNECT (reason 0x00), then TLS `close_notify`; the socket comes
    /// back.
    pub async fn disconnect(mut self, clock: &dyn Clock) -> Result<S, FirmwareError> {
        self.session
            .disconnect(clock.now_ms(), ReasonCode::SUCCESS)
            .map_err(FirmwareError::Session)?;
        self.flush().await?;
        self.tls
            .close()
            .await
            .map_err(|(_, e)| FirmwareError::from(e))
    }
}
