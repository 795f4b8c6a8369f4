//! One client's session: connection state (auth, RESP version, selected db, name) and the
//! dispatch of each parsed command — table lookup, arity, auth — to the connection commands
//! answered here or to the backend.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::Shared;
use super::clients::ClientHandle;
use crate::backend::embedded::ClientView;
use crate::command::{self, CommandSpec, table};
use crate::protocol::{Protocol, Reply, errors};

pub struct Session {
    pub shared: Arc<Shared>,
    pub client: Arc<ClientHandle>,
    pub proto: Protocol,
    pub db: usize,
    pub authenticated: bool,
    /// Set by QUIT or CLIENT KILL of ourselves: flush the replies, then close.
    pub closing: bool,
    /// Channels this client is subscribed to, in subscription order.
    pub subscriptions: Vec<Bytes>,
    /// Where published messages for this client are queued (created on first SUBSCRIBE).
    pub push_tx: Option<tokio::sync::mpsc::Sender<Reply>>,
    pub push_rx: Option<tokio::sync::mpsc::Receiver<Reply>>,
}

impl Session {
    pub fn new(shared: Arc<Shared>, client: Arc<ClientHandle>) -> Session {
        let authenticated = shared.config.server.requirepass.is_none();
        Session {
            shared,
            client,
            proto: Protocol::Resp2,
            db: 0,
            authenticated,
            closing: false,
            subscriptions: Vec::new(),
            push_tx: None,
            push_rx: None,
        }
    }

    /// Runs one command and appends its encoded reply to `out`.
    pub fn handle(&mut self, argv: Vec<Bytes>, out: &mut BytesMut) {
        // (UN)SUBSCRIBE answer with one reply per channel.
        if let Some(name) = argv.first() {
            let multi = if name.eq_ignore_ascii_case(b"subscribe")
                && argv.len() > 1
                && self.may_run("subscribe")
            {
                Some(command::pubsub::subscribe(self, &argv))
            } else if name.eq_ignore_ascii_case(b"unsubscribe") && self.may_run("unsubscribe") {
                Some(command::pubsub::unsubscribe(self, &argv))
            } else {
                None
            };
            if let Some(replies) = multi {
                for r in replies {
                    r.encode(self.proto, out);
                }
                return;
            }
        }
        let reply = self.dispatch(&argv);
        reply.encode(self.proto, out);
    }

    /// Auth has passed (or is not needed) for `name`.
    fn may_run(&self, name: &str) -> bool {
        self.authenticated || name == "auth"
    }

    /// A published message for this client arrived.
    pub fn deliver(&self, msg: Reply, out: &mut BytesMut) {
        msg.encode(self.proto, out);
    }

    fn dispatch(&mut self, argv: &[Bytes]) -> Reply {
        let Some(name) = argv.first() else {
            return Reply::err(errors::SYNTAX);
        };
        let Some(spec) = table::lookup(name) else {
            return Reply::err(errors::unknown_command(argv));
        };
        // The effective spec: for container commands (CLIENT, CONFIG ...), the subcommand.
        let effective = match self.resolve(spec, argv) {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        if !self.authenticated && !effective.has(table::flags::NO_AUTH) {
            self.shared.cmdstats.reject(effective.name);
            return Reply::err(errors::NOAUTH);
        }
        if self.proto == Protocol::Resp2
            && !self.subscriptions.is_empty()
            && !command::pubsub::allowed_in_subscriber_mode(spec.name)
        {
            return command::pubsub::subscriber_mode_error(spec.name);
        }
        let started = Instant::now();
        let reply = self.execute(spec, argv);
        let usec = started.elapsed().as_micros() as u64;
        self.shared
            .cmdstats
            .record(effective.name, usec, reply.is_error());
        self.shared
            .stats
            .total_commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut info = self.client.info.lock();
            info.last_cmd = effective.name;
            info.last_interaction = started;
            info.db = self.db;
        }
        reply
    }

    /// Arity checks and subcommand resolution, with Redis's error texts.
    fn resolve(
        &self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Result<&'static CommandSpec, Reply> {
        if spec.subcommands.is_empty() {
            if !spec.arity_ok(argv.len()) {
                self.shared.cmdstats.reject(spec.name);
                return Err(Reply::err(errors::wrong_arity(spec.name)));
            }
            return Ok(spec);
        }
        let Some(sub_name) = argv.get(1) else {
            return Err(Reply::err(errors::wrong_arity(spec.name)));
        };
        let Some(sub) = table::lookup_subcommand(spec, sub_name) else {
            return Err(Reply::err(errors::unknown_subcommand(sub_name, spec.name)));
        };
        if !sub.arity_ok(argv.len()) {
            self.shared.cmdstats.reject(sub.name);
            return Err(Reply::err(errors::wrong_arity(sub.name)));
        }
        Ok(sub)
    }

    fn execute(&mut self, spec: &'static CommandSpec, argv: &[Bytes]) -> Reply {
        if let Some(reply) = command::connection::run_local(self, spec.name, argv) {
            return reply;
        }
        let engine = &self.shared.engine;
        if engine.supports(spec.name) {
            let view = ClientView {
                db: self.db,
                proto: self.proto,
            };
            return engine.execute(view, spec, argv);
        }
        Reply::err(format!(
            "ERR respgate's embedded engine does not implement '{}' yet",
            spec.name
        ))
    }

    fn unsubscribe_all(&mut self) {
        let id = self.client.info.lock().id;
        for ch in self.subscriptions.drain(..) {
            self.shared.pubsub.unsubscribe(&ch, id);
        }
        self.push_tx = None;
        self.push_rx = None;
    }

    /// RESET: back to a fresh connection's state (RESP2, db 0, no name, unauthenticated
    /// when a password is required).
    pub fn reset(&mut self) {
        self.unsubscribe_all();
        self.proto = Protocol::Resp2;
        self.db = 0;
        self.authenticated = self.shared.config.server.requirepass.is_none();
        let mut info = self.client.info.lock();
        info.name.clear();
        info.resp = 2;
        info.db = 0;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unsubscribe_all();
    }
}
