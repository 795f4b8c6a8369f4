//! CLIENT TRACKING when forwarding to a standalone or Sentinel backend: the backend tracks,
//! on a connection pinned to the client, and respgate carries its invalidations back.
//!
//! - RESP3 client, no REDIRECT: the backend pushes `invalidate` on the pinned connection;
//!   its reader hands each push to this client's outbox (after the replies before it).
//! - REDIRECT to a respgate client: the backend redirects to the pub/sub bridge's
//!   connection, which hears them as `message __redis__:invalidate` and hands them to the
//!   clients subscribed to that channel (all of them: a redirect target may hear another
//!   tracking client's invalidations, which costs it a cache miss, never a stale read;
//!   tenants hear only keys of their namespace).
//!
//! Whenever the backend may have lost what it tracked (the pinned connection died, the
//! bridge reconnected), the client is told to flush everything (`invalidate` with a null
//! key list) and tracking is switched on again on the next connection.

use std::sync::Arc;

use bytes::Bytes;

use super::session::{Outcome, Session};
use crate::backend::remote::conn::{BackendConn, PushSink, encode_command};
use crate::command::tracking::{self, Change, Target, Tracking};
use crate::protocol::Reply;
use crate::protocol::reply_scan::{Frame, decode};

/// CLIENT subcommands about tracking.
pub fn is_tracking_subcommand(sub: &[u8]) -> bool {
    [&b"tracking"[..], b"caching", b"getredir", b"trackinginfo"]
        .iter()
        .any(|w| sub.eq_ignore_ascii_case(w))
}

impl Session {
    /// CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO in standalone or sentinel mode.
    pub(super) fn forward_tracking(&mut self, argv: &[Bytes]) -> Outcome {
        let sub = argv
            .get(1)
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        match sub.as_slice() {
            b"getredir" => Outcome::Reply(tracking::getredir(self.tracking.as_ref())),
            b"trackinginfo" => Outcome::Reply(tracking::trackinginfo(self.tracking.as_ref())),
            b"caching" => {
                if let Err(e) = tracking::caching(argv, self.tracking.as_mut()) {
                    return Outcome::Reply(e);
                }
                // Tracking pinned this client: CACHING reaches the connection that tracks.
                self.forward_on_pinned(argv)
            }
            _ => {
                let clients = self.shared.clients.clone();
                let change =
                    match tracking::parse(argv, self.tracking.as_ref(), |id| clients.exists(id)) {
                        Ok(c) => c,
                        Err(e) => return Outcome::Reply(e),
                    };
                match change {
                    Change::Off => {
                        if self.tracking.is_none() {
                            return Outcome::Reply(Reply::ok());
                        }
                        self.stop_tracking();
                        match self.pinned().cloned() {
                            Some(p) => {
                                self.send_quietly(&p, &[b"CLIENT", b"TRACKING", b"off"]);
                                Outcome::Reply(Reply::ok())
                            }
                            None => Outcome::Reply(Reply::ok()),
                        }
                    }
                    Change::On(t) => self.start_tracking(t),
                }
            }
        }
    }

    /// Switches tracking on (or changes its options) on the client's pinned connection; the
    /// backend's answer is the client's.
    fn start_tracking(&mut self, t: Tracking) -> Outcome {
        // Set after pinning: a fresh pin would otherwise be armed quietly as well.
        let Some(conn) = self.conn(true) else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let args = match self.backend_tracking_args(&t) {
            Ok(a) => a,
            Err(e) => return Outcome::Reply(e),
        };
        self.tracking = Some(t);
        let sink = self.tracking_sink();
        conn.set_push_sink(sink);
        let deadline = self.remote_target().command_timeout;
        self.submit(conn, |b| encode_command(b, &args), 0, deadline)
    }

    /// Tracking off (CLIENT TRACKING off, RESET): the pinned connection stops reporting.
    pub(super) fn stop_tracking(&mut self) {
        if self.tracking.take().is_some()
            && let Some(p) = self.pinned()
        {
            p.set_push_sink(None);
        }
    }

    /// A new pinned connection for a tracking client: tracking goes on there too, before
    /// the command that needed the connection (the old one's tracking died with it).
    pub(super) fn rearm_tracking(&mut self, conn: &BackendConn) {
        let Some(t) = self.tracking.clone() else {
            return;
        };
        match self.backend_tracking_args(&t) {
            Ok(args) => {
                let parts: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
                self.send_quietly(conn, &parts);
                let sink = self.tracking_sink();
                conn.set_push_sink(sink);
            }
            Err(_) => {
                // The redirect cannot be made now (the bridge is reconnecting): the client
                // must not trust its cache. Once per bridge change: the next change (the
                // bridge back) makes the redirect again.
                self.tracking_bridge_generation = self.shared.pubsub.bridge_generation();
                self.tracking_flush();
            }
        }
    }

    /// Before each forwarded command of a client tracking with REDIRECT: the bridge
    /// reconnected since the backend redirection was made, so it is made again.
    pub(super) fn refresh_tracking_redirect(&mut self) {
        let Some(t) = &self.tracking else { return };
        if t.redirect == 0 {
            return;
        }
        if self.shared.pubsub.bridge_generation() == self.tracking_bridge_generation {
            return;
        }
        if let Some(p) = self.pinned().cloned() {
            self.rearm_tracking(&p);
        }
    }

    /// Sends the command to the client's pinned connection (pinning it if needed).
    fn forward_on_pinned(&mut self, argv: &[Bytes]) -> Outcome {
        let Some(conn) = self.conn(true) else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let deadline = self.remote_target().command_timeout;
        self.submit(conn, |b| encode_command(b, argv), 0, deadline)
    }

    /// CLIENT TRACKING as the backend is told it: REDIRECT to the bridge's connection, and
    /// a tenant's prefixes inside its namespace (BCAST without prefixes: the namespace).
    fn backend_tracking_args(&mut self, t: &Tracking) -> Result<Vec<Bytes>, Reply> {
        let mut args: Vec<Bytes> = vec![
            Bytes::from_static(b"CLIENT"),
            Bytes::from_static(b"TRACKING"),
            Bytes::from_static(b"on"),
        ];
        for (on, word) in [
            (t.bcast, "BCAST"),
            (t.optin, "OPTIN"),
            (t.optout, "OPTOUT"),
            (t.noloop, "NOLOOP"),
        ] {
            if on {
                args.push(Bytes::from_static(word.as_bytes()));
            }
        }
        if t.bcast {
            let ns = self.tenant.as_ref().map(|t| &t.namespace);
            for p in tracking::stored_prefixes(t, ns) {
                args.push(Bytes::from_static(b"PREFIX"));
                args.push(p);
            }
        }
        if t.redirect != 0 {
            let Some((id, generation)) = self.shared.pubsub.bridge_client() else {
                return Err(Reply::err(
                    "ERR respgate: the invalidation channel to the backend is not connected yet; retry CLIENT TRACKING shortly",
                ));
            };
            self.tracking_bridge_generation = generation;
            args.push(Bytes::from_static(b"REDIRECT"));
            args.push(Bytes::from(id.to_string()));
        }
        Ok(args)
    }

    /// Where the pinned connection's invalidation pushes go: this client's outbox (RESP3),
    /// or, for its death notice, the redirect target. None for a RESP2 client without
    /// REDIRECT (Redis sends it nothing either).
    fn tracking_sink(&mut self) -> Option<PushSink> {
        let t = self.tracking.clone()?;
        let target = Target::of(self, &t)?;
        let pubsub = self.shared.pubsub.clone();
        Some(Arc::new(move |frame: Option<Bytes>| {
            let keys = match frame {
                None => None,
                // With REDIRECT the backend sends invalidations to the bridge, not here.
                Some(_) if target.redirect != 0 => return,
                Some(frame) => match invalidated_keys(&frame) {
                    Some(keys) => keys,
                    None => return,
                },
            };
            target.send(&pubsub, keys);
        }))
    }

    /// The client's own invalidation, now (its cache may be stale).
    fn tracking_flush(&mut self) {
        let Some(t) = self.tracking.clone() else {
            return;
        };
        if let Some(target) = Target::of(self, &t) {
            target.send(&self.shared.pubsub, None);
        }
    }
}

/// The keys of an `invalidate` push (`Some(None)`: all of them); None for other pushes.
fn invalidated_keys(frame: &Bytes) -> Option<Option<Vec<Bytes>>> {
    let Frame::Array(items) = decode(frame) else {
        return None;
    };
    match items.as_slice() {
        [Frame::Bulk(kind), Frame::Array(keys)] if kind.as_ref() == b"invalidate" => Some(Some(
            keys.iter().filter_map(Frame::as_bytes).cloned().collect(),
        )),
        [Frame::Bulk(kind), Frame::Null] if kind.as_ref() == b"invalidate" => Some(None),
        _ => None,
    }
}
