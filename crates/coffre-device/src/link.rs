//! TLS behind a trait, and the loop that runs an MQTT session over it.
//!
//! A [`Link`] is an open, authenticated byte stream to the broker: on
//! Linux a TCP socket under rustls, on the MCU a socket under embedded-tls.
//! [`Connection`] owns a link and a [`Session`] and moves bytes between
//! them; every decision (what to send, when to ping, what is late) is the
//! session's. A blocking link is all it needs: `send`, `recv` with a time
//! limit, and `close` (TLS `close_notify`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use coffre_mqtt::{Event, Properties, Publish, QoS, ReasonCode, Session, State};

use crate::Clock;

/// What one [`Link::recv`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// This many bytes were written to the buffer.
    Data(usize),
    /// Nothing arrived within the time limit.
    TimedOut,
    /// The broker closed the stream (`close_notify` or end of stream).
    Closed,
}

/// An open TLS stream to the broker.
pub trait Link {
    /// A transport or TLS failure.
    type Error;

    /// Write all of `bytes` (one TLS record when they fit) and flush.
    fn send(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;

    /// Wait up to `timeout_ms` for bytes from the broker.
    fn recv(&mut self, buf: &mut [u8], timeout_ms: u64) -> Result<Recv, Self::Error>;

    /// End the stream cleanly: TLS `close_notify`, then close the
    /// transport.
    fn close(&mut self) -> Result<(), Self::Error>;
}

/// Why a [`Connection`] call failed.
#[derive(Debug)]
pub enum LinkError<E> {
    /// The link failed.
    Link(E),
    /// The broker closed the stream.
    Closed,
    /// The session failed (refusal, timeout, protocol error).
    Session(coffre_mqtt::Error),
    /// Time ran out before the awaited answer (a call's own limit, shorter
    /// than the session's).
    Deadline,
}

impl<E: fmt::Display> fmt::Display for LinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Link(e) => write!(f, "link: {e}"),
            LinkError::Closed => f.write_str("the broker closed the connection"),
            LinkError::Session(e) => write!(f, "{e}"),
            LinkError::Deadline => f.write_str("no answer in time"),
        }
    }
}

/// What CONNACK said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The broker resumed a stored session.
    pub session_present: bool,
    /// CONNACK properties.
    pub properties: Properties,
    /// The keep alive in force, seconds.
    pub keep_alive_secs: u16,
    /// Messages sent again because they were in flight.
    pub resent: usize,
}

impl Opened {
    /// The session's [`Event::Connected`] as what CONNACK said; `None` for
    /// any other event.
    pub fn from_event(e: Event) -> Option<Opened> {
        match e {
            Event::Connected {
                session_present,
                properties,
                keep_alive_secs,
                resent,
            } => Some(Opened {
                session_present,
                properties,
                keep_alive_secs,
                resent,
            }),
            _ => None,
        }
    }
}

/// The broker's answer to a QoS 1 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The packet identifier (QoS 1), `None` for QoS 0.
    pub packet_id: Option<u16>,
    /// PUBACK reason code.
    pub reason: ReasonCode,
    /// The broker's reason string, if any.
    pub reason_string: Option<String>,
    /// PUBLISH → PUBACK, ms.
    pub rtt_ms: u64,
}

impl Acked {
    /// The answer `e` is, when it is the PUBACK of QoS 1 packet `id`.
    pub fn of_puback(e: Event, id: u16) -> Option<Acked> {
        match e {
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
        }
    }
}

/// Why [`Connection::open`] failed, with the link and the session given
/// back: the link may hold a TLS alert still to be read, and the session
/// keeps its messages in flight for the next attempt.
pub struct OpenFailed<L: Link> {
    /// What went wrong.
    pub error: LinkError<L::Error>,
    /// The link.
    pub link: L,
    /// The session, disconnected.
    pub session: Session,
}

impl<L: Link> fmt::Debug for OpenFailed<L>
where
    L::Error: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFailed")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// An MQTT session running over a [`Link`].
pub struct Connection<L> {
    link: L,
    session: Session,
    buf: Vec<u8>,
}

impl<L> fmt::Debug for Connection<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("session", &self.session.state())
            .finish_non_exhaustive()
    }
}

impl<L: Link> Connection<L> {
    /// Send CONNECT over `link` and wait for CONNACK. With a persistent
    /// session (clean start off), messages `session` still holds in flight
    /// are sent again, DUP set.
    ///
    /// On failure the link and the session come back with the error, so
    /// the caller can look at the link (a TLS alert waiting to be read) and
    /// reuse the session.
    pub fn open(
        link: L,
        session: Session,
        clock: &dyn Clock,
    ) -> Result<(Self, Opened), Box<OpenFailed<L>>> {
        Self::open_with_first(link, session, clock, None).map(|(c, o, _)| (c, o))
    }

    /// [`Connection::open`], with `first` = (topic, payload, QoS) sent
    /// right behind the CONNECT when the session allows it (see
    /// [`Session::publish`]): one round trip fewer for a device that
    /// connects to publish. `Some(Some(id))`: it went out as QoS 1 packet
    /// `id`, whose PUBACK [`Connection::wait_puback`] waits for (it often
    /// comes with the CONNACK); `Some(None)`: it went out at QoS 0;
    /// `None`: it did not go out (publish it after the CONNACK).
    #[allow(clippy::type_complexity)]
    pub fn open_with_first(
        link: L,
        mut session: Session,
        clock: &dyn Clock,
        first: Option<(&str, &[u8], QoS)>,
    ) -> Result<(Self, Opened, Option<Option<u16>>), Box<OpenFailed<L>>> {
        if let Err(e) = session.connect(clock.now_ms()) {
            return Err(Box::new(OpenFailed {
                error: LinkError::Session(e),
                link,
                session,
            }));
        }
        let sent = first.and_then(|(topic, payload, qos)| {
            session
                .publish(clock.now_ms(), topic, payload, qos, false)
                .ok()
        });
        let mut c = Connection {
            link,
            session,
            buf: alloc::vec![0u8; 4096],
        };
        let r = c.wait(clock, None, Opened::from_event);
        match r {
            Ok(o) => Ok((c, o, sent)),
            Err(e) => {
                c.session.connection_lost();
                Err(Box::new(OpenFailed {
                    error: e,
                    link: c.link,
                    session: c.session,
                }))
            }
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The link (to inspect it after an error).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Give the link and the session back (the session marked
    /// disconnected, its messages in flight kept).
    pub fn into_parts(mut self) -> (L, Session) {
        self.session.connection_lost();
        (self.link, self.session)
    }

    fn flush(&mut self) -> Result<(), LinkError<L::Error>> {
        if let Some(bytes) = self.session.poll_transmit() {
            self.link.send(&bytes).map_err(LinkError::Link)?;
        }
        Ok(())
    }

    /// Serve the session until `pick` accepts an event, or `deadline_ms`
    /// (when given) passes: sends what the session queues, reads what
    /// arrives, and wakes the session when it asked to be woken.
    pub fn wait<T>(
        &mut self,
        clock: &dyn Clock,
        deadline_ms: Option<u64>,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> Result<T, LinkError<L::Error>> {
        loop {
            self.flush()?;
            while let Some(e) = self.session.poll_event() {
                if let Some(t) = pick(e) {
                    return Ok(t);
                }
            }
            if let Some(r) = self.step(clock, deadline_ms)? {
                return Err(r);
            }
        }
    }

    /// One read or one timeout; `Some(Deadline)` when `deadline_ms` passed.
    fn step(
        &mut self,
        clock: &dyn Clock,
        deadline_ms: Option<u64>,
    ) -> Result<Option<LinkError<L::Error>>, LinkError<L::Error>> {
        let now = clock.now_ms();
        if deadline_ms.is_some_and(|d| now >= d) {
            return Ok(Some(LinkError::Deadline));
        }
        let wake = match (self.session.poll_timeout(), deadline_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(w) = wake {
            if now >= w {
                self.session
                    .handle_timeout(now)
                    .map_err(LinkError::Session)?;
                self.flush()?;
                return Ok(None);
            }
        }
        // With nothing to wait for and no deadline, wait a keep alive at most.
        let timeout = wake.map_or(60_000, |w| w - now).max(1);
        match self
            .link
            .recv(&mut self.buf, timeout)
            .map_err(LinkError::Link)?
        {
            Recv::Data(n) => self
                .session
                .handle_incoming(clock.now_ms(), &self.buf[..n])
                .map_err(LinkError::Session)?,
            Recv::TimedOut => {}
            Recv::Closed => return Err(LinkError::Closed),
        }
        Ok(None)
    }

    /// Publish; for QoS 1, wait for the PUBACK.
    pub fn publish(
        &mut self,
        clock: &dyn Clock,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Acked, LinkError<L::Error>> {
        let id = self
            .session
            .publish(clock.now_ms(), topic, payload, qos, retain)
            .map_err(LinkError::Session)?;
        let Some(id) = id else {
            self.flush()?;
            return Ok(Acked {
                packet_id: None,
                reason: ReasonCode::SUCCESS,
                reason_string: None,
                rtt_ms: 0,
            });
        };
        self.wait_puback(clock, id)
    }

    /// Wait for the PUBACK of QoS 1 packet `id`.
    pub fn wait_puback(
        &mut self,
        clock: &dyn Clock,
        id: u16,
    ) -> Result<Acked, LinkError<L::Error>> {
        self.wait(clock, None, |e| Acked::of_puback(e, id))
    }

    /// Subscribe; wait for the SUBACK and return its reason codes.
    pub fn subscribe(
        &mut self,
        clock: &dyn Clock,
        filters: &[(&str, QoS)],
    ) -> Result<Vec<ReasonCode>, LinkError<L::Error>> {
        let id = self
            .session
            .subscribe(clock.now_ms(), filters)
            .map_err(LinkError::Session)?;
        self.wait(clock, None, |e| match e {
            Event::SubAck { packet_id, reasons } if packet_id == id => Some(reasons),
            _ => None,
        })
    }

    /// Send PINGREQ and wait for PINGRESP; returns the round trip, ms.
    pub fn ping(&mut self, clock: &dyn Clock) -> Result<u64, LinkError<L::Error>> {
        self.session
            .ping(clock.now_ms())
            .map_err(LinkError::Session)?;
        self.wait(clock, None, |e| match e {
            Event::PingResp { rtt_ms } => Some(rtt_ms),
            _ => None,
        })
    }

    /// Wait until `deadline_ms` for an application message, keeping the
    /// session alive. `Ok(None)`: none arrived in time.
    pub fn poll(
        &mut self,
        clock: &dyn Clock,
        deadline_ms: u64,
    ) -> Result<Option<Publish>, LinkError<L::Error>> {
        loop {
            self.flush()?;
            while self.session.poll_event().is_some() {}
            if let Some(m) = self.session.poll_message() {
                return Ok(Some(m));
            }
            match self.step(clock, Some(deadline_ms))? {
                Some(LinkError::Deadline) => return Ok(None),
                Some(other) => return Err(other),
                None => {}
            }
        }
    }

    /// End the session: DISCONNECT with `reason`, then close the link
    /// (`close_notify`). Both are attempted; the first failure is returned.
    pub fn disconnect(
        mut self,
        clock: &dyn Clock,
        reason: ReasonCode,
    ) -> Result<(), LinkError<L::Error>> {
        let sent = match self.session.state() {
            State::Connected | State::Connecting => self
                .session
                .disconnect(clock.now_ms(), reason)
                .map_err(LinkError::Session)
                .and_then(|()| self.flush()),
            _ => Ok(()),
        };
        let closed = self.link.close().map_err(LinkError::Link);
        sent.and(closed)
    }
}
