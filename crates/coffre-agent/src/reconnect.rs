//! The one reconnect loop of the agent: at most one open session, attempts
//! spaced by [`Backoff`], every step reported as an [`Event`]. The
//! publisher and the subscriber only say how to open a session and what to
//! do with it.

use std::sync::Arc;
use std::time::Instant;

use rustls::ClientConfig;

use crate::agent::{Backoff, Event};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::mqtt::{Client, ClientOptions};
use crate::tls;

/// A session that comes back after failures.
pub(crate) struct Reconnect<'a> {
    broker: String,
    backoff: Backoff,
    clock: &'a dyn Clock,
    client: Option<Client>,
    failures: u32,
    next_attempt: Instant,
    /// Sessions opened so far.
    pub(crate) connections: u32,
}

impl<'a> Reconnect<'a> {
    pub(crate) fn new(broker: String, backoff: Backoff, clock: &'a dyn Clock) -> Self {
        Reconnect {
            broker,
            backoff,
            next_attempt: clock.now(),
            clock,
            client: None,
            failures: 0,
            connections: 0,
        }
    }

    /// The open session, if any.
    pub(crate) fn client(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// When the next attempt may start; `None` while a session is open.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.client.is_none().then_some(self.next_attempt)
    }

    /// Open a session if none is open and the backoff allows it now.
    /// `open` connects (and reports [`Event::Connected`] through the
    /// callback it gets). A failure that retrying cannot fix is returned.
    pub(crate) fn ensure(
        &mut self,
        on_event: &mut dyn FnMut(&Event),
        open: impl FnOnce(&mut dyn FnMut(&Event)) -> Result<Client>,
    ) -> Result<()> {
        if self.client.is_some() || self.clock.now() < self.next_attempt {
            return Ok(());
        }
        on_event(&Event::Connecting {
            broker: self.broker.clone(),
            attempt: self.failures + 1,
        });
        match open(on_event) {
            Ok(c) => {
                self.failures = 0;
                self.connections += 1;
                self.client = Some(c);
                Ok(())
            }
            Err(e) => self.failed(e, on_event),
        }
    }

    /// The open session failed with `e`: drop it, and retry from the
    /// first backoff step — or return `e` when retrying cannot fix it.
    pub(crate) fn lost(&mut self, e: Error, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        self.client = None;
        self.failures = 0;
        self.failed(e, on_event)
    }

    fn failed(&mut self, e: Error, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        if !e.is_retryable() {
            return Err(e);
        }
        let delay = crate::agent::delay_random(&self.backoff, self.failures);
        self.failures += 1;
        self.next_attempt = self.clock.now() + delay;
        on_event(&Event::Disconnected { error: Some(e) });
        on_event(&Event::Reconnecting {
            delay,
            attempt: self.failures,
        });
        Ok(())
    }

    /// End the open session cleanly, if there is one.
    pub(crate) fn close(&mut self, on_event: &mut dyn FnMut(&Event)) {
        if let Some(c) = self.client.take() {
            let r = c.disconnect();
            on_event(&Event::Disconnected { error: r.err() });
        }
    }
}

/// Connect (with `first` right behind the CONNECT, see
/// [`Client::connect_with_first`]) and report [`Event::Connected`].
pub(crate) fn connect_reported(
    copts: &ClientOptions,
    tls: &Arc<ClientConfig>,
    clock: &Arc<dyn Clock>,
    first: Option<(&str, &[u8], crate::mqtt::QoS)>,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Client> {
    let c = Client::connect_with_first(copts, tls.clone(), clock.clone(), first)?;
    let s = c.session();
    on_event(&Event::Connected {
        broker: c.broker().to_owned(),
        tls_version: tls::version_name(s.tls_version),
        mqtt: c.version(),
        elapsed: s.timing.total(),
        timing: s.timing,
        session_present: s.session_present,
    });
    Ok(c)
}
