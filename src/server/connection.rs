//! One client connection's task: read, parse every complete command, run them in order,
//! and write the batch of replies with one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::clients::{ClientHandle, KILLED, SHUTDOWN};
use crate::metrics::Disconnect;
use crate::metrics::commands::{Verdict, verdict_of_encoded};
use crate::net::{ReadHalf, Stream, WriteHalf};
use tracing::debug;

use super::Shared;
use super::forward::Slot;
use super::session::{Handled, PendingBlock, RawRequest, Session};
use crate::backend::embedded::EngineHold;
use crate::backend::remote::cluster::router::{self, Deferred};
use crate::protocol::RequestParser;
use crate::protocol::reply_scan::{Frame, decode};

/// Flush replies early when a pipeline's output grows past this, so a long pipeline of big
/// replies is streamed instead of buffered whole.
const FLUSH_AT: usize = 64 * 1024;
/// Forwarding: wait for owed replies once this many are queued, bounding a pipeline's memory.
const MAX_PENDING: usize = 4096;
/// Give back buffer memory after a burst.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// How long closing a connection may wait for the client to take our last bytes.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a client may take to finish its TLS handshake before it is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Refuses a client over max_clients the way Redis does, then closes.
pub async fn reject<S: tokio::io::AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, stream.shutdown()).await;
}

/// Counts a client in [`Shared::handshaking`] for as long as it lives. Taken in the accept
/// loop, so a burst of connections is counted before their tasks even start.
pub struct Handshaking(Arc<Shared>);

impl Handshaking {
    pub fn new(shared: &Arc<Shared>) -> Self {
        shared.handshaking.fetch_add(1, Ordering::Relaxed);
        Handshaking(shared.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client of the TLS listener: the handshake (bounded in time), then [`serve`], or
/// [`reject`] over TLS when the client is over max_clients (so it can read why).
pub async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    over_limit: bool,
    counted: Handshaking,
) {
    // Before the handshake, so its flights are not held back by Nagle either.
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
    match handshake {
        Ok(Ok(tls)) if over_limit => {
            drop(counted);
            reject(tls).await
        }
        Ok(Ok(tls)) => serve(shared, Stream::Tls(Box::new(tls.into())), peer, counted).await,
        // Plain-text clients, untrusted or missing client certificates, scanners: the
        // client's fault, and only its own connection ends.
        Ok(Err(e)) => {
            shared.stats.tls_handshake_failed();
            debug!(client = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            shared.stats.tls_handshake_failed();
            debug!(client = %peer, "TLS handshake timed out");
        }
    }
}

/// Serves one client; `counted` holds its place against max_clients until it is registered.
pub async fn serve(shared: Arc<Shared>, stream: Stream, peer: SocketAddr, counted: Handshaking) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.listen_addr);
    let registration = shared.clients.register(peer, local);
    // Registered: from now on `clients` counts it against max_clients.
    drop(counted);
    let handle = registration.handle.clone();
    if let Some(certs) = stream.peer_certificates() {
        handle.info.lock().tls_peer = crate::tls::peer_identity(certs);
    }
    crate::metrics::handles().connected_clients.increment(1.0);
    let mut session = Session::new(shared.clone(), handle.clone());
    let mut parser = RequestParser::new(shared.limits.clone());
    // Forwarding may send a command on as the client's bytes (see Session::raw_request).
    parser.keep_frames(shared.remote.is_some());
    let mut out = BytesMut::with_capacity(16 * 1024);
    let (mut rd, mut wr) = stream.into_split();
    let mut why = Disconnect::Closed;
    let metrics_on = crate::metrics::enabled();
    // See the end of a read's commands below.
    let defer_writes = shared.remote.is_none();
    // One future for the client's kill switch, polled by every wait below (a fresh one per
    // wait registered and unregistered a waiter each time: a measurable share of a request).
    // Every wait that sees it fire ends the connection, so it is never polled after that.
    let killed = handle.signalled(KILLED);
    tokio::pin!(killed);
    // The same for the server's shutdown (it fires once; `stopping` keeps the select from
    // polling it again while the connection finishes what it had received).
    let stop_signal = handle.signalled(SHUTDOWN);
    tokio::pin!(stop_signal);
    let mut stopping = false;
    let mut shown_qbuf = usize::MAX;

    // One argument vector for every command of the connection (no allocation per command).
    let mut argv: Vec<Bytes> = Vec::with_capacity(8);
    // Waits for every reply owed to the client (forwarding) with the connection's own
    // borrows; true: the client went away meanwhile.
    macro_rules! drain_owed {
        () => {
            drain(
                &shared,
                &handle,
                &mut killed,
                &mut session,
                &mut rd,
                &mut parser,
                &mut out,
            )
            .await
            .is_err()
        };
    }

    'conn: loop {
        // Commands this read brought (pipeline depth).
        let mut depth = 0u32;
        // Run every complete command already buffered, in order, stopping for each wait
        // (`next`: what the wait just finished says to do; None: run on).
        let mut next: Option<Step> = None;
        let mut waited = false;
        loop {
            if std::mem::take(&mut waited) {
                // The next command's clock and timing start now, not before the wait (the
                // engine takes its time from this reading).
                session.last_read = std::time::Instant::now();
            }
            let step = match next.take() {
                Some(step) => step,
                None => run_buffered(
                    &shared,
                    &handle,
                    &mut session,
                    &mut parser,
                    &mut argv,
                    &mut out,
                    &mut depth,
                ),
            };
            waited = !matches!(step, Step::Done);
            next = match step {
                Step::Done => break,
                Step::RetryAfterDrain => {
                    // It goes to another backend connection: its predecessors' replies
                    // must be in first, so the backend runs them in the client's order.
                    let mut handled = Handled::RetryAfterDrain;
                    while let Handled::RetryAfterDrain = handled {
                        session.flush_counts();
                        if drain_owed!() {
                            break 'conn;
                        }
                        let mut hold = EngineHold::new(&shared.engine);
                        handled = session.handle(&argv, &mut out, &mut hold);
                    }
                    after_command(&shared, &handle, &mut session, &mut argv, &out, handled)
                }
                Step::Blocked(mut pending) => {
                    // Blocked: send what is ready, then hold the rest of the pipeline
                    // until the command is served, times out, or the client leaves.
                    session.flush_counts();
                    if !out.is_empty()
                        && write_out(&shared, &mut killed, &mut wr, &mut out)
                            .await
                            .is_err()
                    {
                        session.finish_block(pending, None, None);
                        break 'conn;
                    }
                    let woke = wait_while_blocked(
                        &shared,
                        &mut killed,
                        &mut rd,
                        &mut parser,
                        &handle,
                        &mut pending,
                    )
                    .await;
                    match woke {
                        Woke::Served(reply) => {
                            session.finish_block(pending, Some(reply), Some(&mut out))
                        }
                        Woke::TimedOut => session.finish_block(pending, None, Some(&mut out)),
                        Woke::Gone => {
                            session.finish_block(pending, None, None);
                            break 'conn;
                        }
                    }
                    wait_needed(&shared, &handle, &session, &out)
                }
                Step::DrainOwed => {
                    session.flush_counts();
                    if drain_owed!() {
                        break 'conn;
                    }
                    (out.len() >= FLUSH_AT && session.pending.is_empty()).then_some(Step::WriteOut)
                }
                Step::WriteOut => {
                    session.flush_counts();
                    if write_out(&shared, &mut killed, &mut wr, &mut out)
                        .await
                        .is_err()
                    {
                        break 'conn;
                    }
                    None
                }
                Step::OverOutputLimit => break 'conn,
                Step::ProtocolError(e) => {
                    // Redis replies with the error, then closes the connection.
                    session.flush_counts();
                    shared.stats.protocol_error();
                    why = Disconnect::ProtocolError;
                    debug!(client = %peer, error = %e, "protocol error, closing");
                    if drain_owed!() {
                        break 'conn;
                    }
                    out.extend_from_slice(b"-");
                    out.extend_from_slice(e.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                    let _ = write_out(&shared, &mut killed, &mut wr, &mut out).await;
                    break 'conn;
                }
            };
        }
        if metrics_on && depth > 0 {
            crate::metrics::handles()
                .pipeline_depth
                .record(f64::from(depth));
        }
        // About to wait (for the backend, the client's socket or its next bytes).
        session.flush_counts();
        // Waiting for the backend, the drain reads what the client sends meanwhile: the
        // rest of a pipeline may be buffered by the time it returns.
        let buffered_before_drain = parser.buffered();
        if !session.pending.is_empty() && drain_owed!() {
            break;
        }
        // The forwarded replies just counted.
        session.flush_counts();
        if defer_writes && !out.is_empty() {
            // The embedded engine's replies wait until the other clients that are ready now
            // have run their commands, and then all go out together, as Redis writes every
            // client's replies just before it sleeps. Written one by one between long
            // batches (a pipeline of MSETs), each woke redis-benchmark on its own:
            // -P 16 MSET 0.43-0.46M/s against Redis's 0.55-0.58M, 7 300-9 500 sleeps of
            // redis-benchmark per 200k MSETs; deferred, 0.54-0.57M/s and 1 100-1 300 sleeps.
            // Forwarding needs none of this: a backend read hands many clients their replies
            // at once, so their writes already come together.
            tokio::task::yield_now().await;
        }
        if !out.is_empty()
            && write_out(&shared, &mut killed, &mut wr, &mut out)
                .await
                .is_err()
        {
            break;
        }
        if parser.buffered() != buffered_before_drain
            && !(session.closing || handle.is_shutting_down() || handle.is_killed())
        {
            // Run what the drain read instead of waiting for bytes the client has sent.
            continue;
        }
        let shutting_down = handle.is_shutting_down();
        if shutting_down && !session.closing {
            why = Disconnect::Shutdown;
        }
        if session.closing || shutting_down || handle.is_killed() {
            break;
        }
        if parser.buffered() != shown_qbuf {
            // CLIENT LIST's qbuf (a lock only when it changed).
            shown_qbuf = parser.buffered();
            handle.info.lock().qbuf = shown_qbuf;
        }
        // Like Redis, the idle timeout spares subscribers (they only listen).
        let idle = if session.in_subscriber_mode() {
            None
        } else {
            shared.idle_timeout()
        };
        tokio::select! {
            biased;
            _ = killed.as_mut() => break,
            // On shutdown, finish what was already received (loop once more), then close.
            _ = &mut stop_signal, if !stopping => {
                stopping = true;
                continue;
            }
            _ = sleep_or_forever(idle) => {
                debug!(client = %peer, "idle timeout, closing");
                why = Disconnect::IdleTimeout;
                break;
            }
            Some(msg) = recv_push(&mut session.inbox) => {
                session.deliver(msg, &mut out);
                // Deliver whatever else is queued in the same write.
                while let Some(inbox) = session.inbox.as_mut() {
                    match inbox.try_recv() {
                        Some(m) => session.deliver(m, &mut out),
                        None => break,
                    }
                    if out.len() >= FLUSH_AT { break; }
                }
            }
            read = rd.read_buf(parser.buffer_mut()) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    shared.stats.input(n);
                    session.last_read = std::time::Instant::now();
                }
            },
        }
    }
    // Bounded: over TLS, shutting down first sends what rustls still holds plus a
    // close_notify, which waits forever on a client that stopped reading (one killed for
    // its output buffer, say). Plain TCP shuts down at once.
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, wr.shutdown()).await;
    crate::metrics::handles().connected_clients.decrement(1.0);
    handle.forget_waker();
    if handle.was_over_output_limit() {
        why = Disconnect::OutputBufferLimit;
    } else if handle.is_killed() && why == Disconnect::Closed {
        why = Disconnect::Killed;
    } else if why == Disconnect::Closed && parser.buffered() > shared.limits.max_query_buffer {
        why = Disconnect::QueryBufferLimit;
    }
    why.count();
}

/// Why the connection stopped running the client's buffered commands: what it must wait
/// for before it goes on.
enum Step {
    /// Every buffered command ran, or the client is closing.
    Done,
    /// The command in `argv` goes to another backend connection: drain the replies owed
    /// first, then hand it in again (forwarding).
    RetryAfterDrain,
    /// A blocking command waits for data.
    Blocked(PendingBlock),
    /// MAX_PENDING replies are owed (forwarding).
    DrainOwed,
    /// The replies reached FLUSH_AT.
    WriteOut,
    OverOutputLimit,
    ProtocolError(crate::protocol::ParseError),
}

/// Runs the client's buffered commands until one needs a wait (or none is left). A plain
/// function, not async: the engine lock it may hold across the commands (see
/// [`EngineHold`]) is let go when it returns, before anything waits.
fn run_buffered(
    shared: &Shared,
    handle: &ClientHandle,
    session: &mut Session,
    parser: &mut RequestParser,
    argv: &mut Vec<Bytes>,
    out: &mut BytesMut,
    depth: &mut u32,
) -> Step {
    let mut hold = EngineHold::new(&shared.engine);
    // Only forwarding has a fast lane (the embedded engine's commands never look for it).
    let lane = shared.remote.is_some();
    loop {
        // Forwarding a plain client's ordinary commands: sent as they came, in one go.
        let sent = if lane {
            let room = MAX_PENDING.saturating_sub(session.pending.len());
            session.forward_lane(parser, room)
        } else {
            0
        };
        if sent > 0 {
            *depth += sent as u32;
            if let Some(step) = wait_needed(shared, handle, session, out) {
                return step;
            }
            continue;
        }
        match parser.next_command_into(argv) {
            Ok(true) => {
                *depth += 1;
                session.raw_request = parser.take_frame().map(|bytes| RawRequest {
                    bytes,
                    argv_at: argv.as_ptr() as usize,
                    argc: argv.len(),
                });
                let handled = session.handle(argv, out, &mut hold);
                if let Handled::RetryAfterDrain = handled {
                    return Step::RetryAfterDrain;
                }
                if let Some(step) = after_command(shared, handle, session, argv, out, handled) {
                    return step;
                }
            }
            Ok(false) => return Step::Done,
            Err(e) => return Step::ProtocolError(e),
        }
    }
}

/// A command was handled: its arguments go, and the connection may have to wait.
fn after_command(
    shared: &Shared,
    handle: &ClientHandle,
    session: &mut Session,
    argv: &mut Vec<Bytes>,
    out: &BytesMut,
    handled: Handled,
) -> Option<Step> {
    // Never matched against a later command's argument vector (the same vector, refilled).
    session.raw_request = None;
    release_arguments(argv);
    if let Handled::Blocked(pending) = handled {
        return Some(Step::Blocked(pending));
    }
    wait_needed(shared, handle, session, out)
}

/// After a command: whether the connection must stop to close, drain or write.
fn wait_needed(
    shared: &Shared,
    handle: &ClientHandle,
    session: &Session,
    out: &BytesMut,
) -> Option<Step> {
    if over_output_limit(shared, handle, out) {
        return Some(Step::OverOutputLimit);
    }
    if session.closing {
        return Some(Step::Done);
    }
    if session.pending.len() >= MAX_PENDING {
        return Some(Step::DrainOwed);
    }
    if out.len() >= FLUSH_AT && session.pending.is_empty() {
        return Some(Step::WriteOut);
    }
    None
}

/// Drops a handled command's arguments (they may hold the read buffer) and keeps the
/// vector's allocation for the next command, unless a huge command grew it.
fn release_arguments(argv: &mut Vec<Bytes>) {
    argv.clear();
    if argv.capacity() > 256 {
        *argv = Vec::with_capacity(8);
    }
}

/// Are the replies waiting for this client over `client-output-buffer-limit normal`? Then it
/// is disconnected, as Redis does (logged, like Redis's "scheduled to be closed ASAP").
fn over_output_limit(
    shared: &Shared,
    handle: &crate::server::clients::ClientHandle,
    out: &BytesMut,
) -> bool {
    let limit = shared.normal_output_limit.load(Ordering::Relaxed);
    if limit == 0 || out.len() <= limit {
        return false;
    }
    tracing::warn!(
        client = handle.info.lock().id,
        buffered = out.len(),
        limit,
        "client over its output buffer limit (normal), disconnecting"
    );
    true
}

/// The client went away (or was killed) while replies were owed to it.
struct ClientGone;

/// Forwarding mode: waits for every owed reply, in order, appending them to `out`. Meanwhile
/// the client's input is buffered (not run) and its disconnect noticed; a reply overdue by
/// its deadline gives up on that backend connection (everything owed on it is answered with
/// a timeout error and the next command gets a fresh one).
async fn drain<K: std::future::Future<Output = ()>>(
    shared: &Shared,
    handle: &crate::server::clients::ClientHandle,
    killed: &mut std::pin::Pin<&mut K>,
    session: &mut Session,
    rd: &mut ReadHalf,
    parser: &mut RequestParser,
    out: &mut BytesMut,
) -> Result<(), ClientGone> {
    let proto = session.proto;
    let client_id = session.client_id();
    session.flush_outgoing();
    // A WAIT's PUBLISH was refused (the backend's error text): the WAIT right behind it gets
    // this error instead.
    let mut refused: Option<Bytes> = None;
    while let Some(slot) = session.pending.pop_front() {
        if over_output_limit(shared, handle, out) {
            return Err(ClientGone);
        }
        let (deadline, resend, strip, unwrap, cmd, discard, gate) = match slot {
            Slot::Local(bytes) => {
                out.extend_from_slice(&bytes);
                continue;
            }
            Slot::Deferred(deferred, strip, cmd, user) => {
                // Every earlier reply is in; run it now (across the nodes of a cluster).
                if let Some(remote) = &shared.remote {
                    let client = router::Client {
                        proto,
                        id: client_id,
                        user: user.as_ref(),
                    };
                    let run = async {
                        match (*deferred, &remote.cluster) {
                            (Deferred::Walk(walk), _) => {
                                crate::backend::remote::walk::run(remote, walk, client).await
                            }
                            (deferred, Some(cluster)) => {
                                router::run_deferred(remote, cluster, deferred, client).await
                            }
                            // Only a walk is deferred outside cluster mode.
                            (_, None) => router::error_frame(
                                "ERR respgate: a cluster command without a cluster",
                            ),
                        }
                    };
                    // A tenant's walk over a big server takes seconds: CLIENT KILL must not
                    // wait for it (what was sent runs on; nothing is acknowledged).
                    let reply = tokio::select! {
                        reply = run => reply,
                        _ = killed.as_mut() => return Err(ClientGone),
                    };
                    let reply = strip_tenant(session, strip, reply, proto);
                    record_forwarded(session, cmd, verdict_of_encoded(&reply));
                    out.extend_from_slice(&reply);
                }
                if let Some(st) = session.remote.as_mut()
                    && !session
                        .pending
                        .iter()
                        .any(|s| matches!(s, Slot::Deferred(..)))
                {
                    st.barrier = false;
                }
                continue;
            }
            Slot::Remote {
                deadline,
                resend,
                strip,
                unwrap,
                cmd,
                discard,
                gate,
            } => (deadline, resend, strip, unwrap, cmd, discard, gate),
        };
        let Some(st) = session.remote.as_mut() else {
            return Err(ClientGone);
        };
        if !st.has_carry() {
            // Most replies are already there (a pipeline's come together): no need to park.
            let received = match st.replies.try_recv() {
                Ok(r) => Some(r),
                Err(_) => {
                    // When this reply is due (None: whenever it comes, e.g. BLPOP 0).
                    let due = deadline.map(|d| tokio::time::Instant::now() + d);
                    let timer = st.overdue.get_or_insert_with(|| {
                        Box::pin(tokio::time::sleep_until(
                            due.unwrap_or_else(tokio::time::Instant::now),
                        ))
                    });
                    if let Some(due) = due
                        && timer.deadline() > due
                    {
                        // Set for a longer wait (a blocking command's): this reply is due first.
                        timer.as_mut().reset(due);
                    }
                    let conn = st.inflight.clone();
                    loop {
                        tokio::select! {
                            biased;
                            r = st.replies.recv() => break r,
                            _ = timer.as_mut(), if due.is_some() && conn.as_ref().is_some_and(|c| !c.is_dead()) => {
                                // The timer may be set for an earlier wait's reply: only
                                // this one's own due time counts.
                                match due {
                                    Some(due) if tokio::time::Instant::now() < due => {
                                        timer.as_mut().reset(due);
                                    }
                                    _ => {
                                        let ms = deadline.map_or(0, |d| d.as_millis());
                                        if let Some(c) = &conn {
                                            c.kill(crate::backend::remote::BackendError::Timeout(ms));
                                        }
                                        // The kill answers this slot (and the rest owed on
                                        // that connection).
                                    }
                                }
                            }
                            _ = killed.as_mut() => return Err(ClientGone),
                            read = rd.read_buf(parser.buffer_mut()) => match read {
                                Ok(0) | Err(_) => return Err(ClientGone),
                                Ok(n) => {
                                    shared.stats.input(n);
                                    if parser.buffered() > shared.limits.max_query_buffer {
                                        return Err(ClientGone);
                                    }
                                }
                            },
                        }
                    }
                }
            };
            match received {
                Some(Ok(chunk)) => st.set_carry(chunk),
                Some(Err(e)) => {
                    st.settled(1);
                    // A refused PUBLISH's WAIT that failed itself: its own error is the answer.
                    refused = None;
                    if let Some(resend) = &resend
                        && let Some(remote) = &shared.remote
                        && let Some(cluster) = &remote.cluster
                    {
                        // A node failed: its replica may be taking over. The map is re-read
                        // and, if the command never reached the node, it is resent.
                        cluster.request_refresh();
                        let r =
                            router::follow(remote, cluster, resend, Err(e), proto, client_id).await;
                        record_forwarded(session, cmd, verdict_of_encoded(&r));
                        if !discard {
                            out.extend_from_slice(&r);
                        }
                        continue;
                    }
                    let address = shared
                        .remote
                        .as_ref()
                        .map(|r| r.target.address())
                        .unwrap_or_default();
                    if !discard {
                        crate::protocol::Reply::err(e.client_error(&address)).encode(proto, out);
                    }
                    record_forwarded(session, cmd, Err(0));
                    continue;
                }
                // Our own sink is alive while the session is: cannot happen.
                None => return Err(ClientGone),
            }
        }
        // Only an error reply can be a redirection: a cluster command answered otherwise is
        // handed on with the replies around it.
        let errors = st.carried_errors();
        let redirectable = resend.is_some() && errors & 1 != 0;
        if redirectable || strip.is_some() || unwrap.is_some() || discard || refused.is_some() {
            // One reply on its own: resent elsewhere if a cluster node redirects it, and
            // stripped of the tenant's prefix if it names keys or channels.
            let mut one = BytesMut::new();
            let (used, _) = st.take_replies(1, &mut one);
            st.settled(used);
            let mut reply = one.freeze();
            if let Some(resend) = &resend
                && resend.wants_follow(&reply)
                && let Some(remote) = &shared.remote
                && let Some(cluster) = &remote.cluster
            {
                reply = router::follow(remote, cluster, resend, Ok(reply), proto, client_id).await;
            }
            if let Some(unwrap) = &unwrap {
                reply = unwrap.apply(&reply, proto);
            }
            if gate {
                if let Frame::Error(text) = decode(&reply) {
                    refused = Some(text);
                }
                continue;
            }
            if let Some(publish_error) = refused.take() {
                reply = wait_refused(&publish_error);
            }
            let reply = strip_tenant(session, strip, reply, proto);
            record_forwarded(session, cmd, verdict_of_encoded(&reply));
            if !discard {
                out.extend_from_slice(&reply);
            }
            continue;
        }
        // This slot, and the plain remote slots right behind it, take replies from the chunk
        // (looked at only as far as the chunk goes: a deep pipeline's slots are not walked
        // again for every chunk).
        let following = session
            .pending
            .iter()
            .take(st.carried().saturating_sub(1))
            .enumerate()
            .take_while(|(i, s)| match s {
                Slot::Remote {
                    resend,
                    strip: None,
                    unwrap: None,
                    discard: false,
                    ..
                } => resend.is_none() || (errors >> (i + 1)) & 1 == 0,
                _ => false,
            })
            .count();
        let start = out.len();
        let (used, errors) = st.take_replies(1 + following, out);
        st.settled(used);
        if errors != 0
            && let Some(tenant) = &session.tenant
        {
            strip_tenant_errors(&tenant.namespace, out, start, errors, proto);
        }
        let mut verdicts = Verdicts::new(&out[start..], errors);
        let mut clock = ReplyClock::new();
        let mut alike = Alike::new(cmd, verdicts.next());
        for _ in 1..used {
            if let Some(Slot::Remote { cmd, .. }) = session.pending.pop_front() {
                alike.add(session, cmd, verdicts.next(), &mut clock);
            }
        }
        alike.record(session, &mut clock);
    }
    Ok(())
}

/// Consecutive forwarded replies to the same command from the same read with the same
/// verdict (a pipeline of GETs), counted and timed together: one tally update for the lot.
struct Alike {
    cmd: Option<(&'static crate::command::CommandSpec, std::time::Instant)>,
    verdict: Verdict,
    n: u64,
}

impl Alike {
    fn new(
        cmd: Option<(&'static crate::command::CommandSpec, std::time::Instant)>,
        verdict: Verdict,
    ) -> Alike {
        Alike { cmd, verdict, n: 1 }
    }

    /// One more reply: joins the lot if it is alike, else the lot is recorded and it
    /// starts the next.
    fn add(
        &mut self,
        session: &mut Session,
        cmd: Option<(&'static crate::command::CommandSpec, std::time::Instant)>,
        verdict: Verdict,
        clock: &mut ReplyClock,
    ) {
        let same = match (self.cmd, cmd) {
            (Some((a, at)), Some((b, bt))) => std::ptr::eq(a, b) && at == bt,
            _ => false,
        };
        if same && self.verdict == verdict {
            self.n += 1;
            return;
        }
        self.record(session, clock);
        *self = Alike::new(cmd, verdict);
    }

    fn record(&mut self, session: &mut Session, clock: &mut ReplyClock) {
        record_forwarded_n(session, self.cmd, self.verdict, clock, self.n);
        self.n = 0;
    }
}

/// Counts and times a forwarded command now that its reply is here.
fn record_forwarded(
    session: &mut Session,
    cmd: Option<(&'static crate::command::CommandSpec, std::time::Instant)>,
    verdict: Verdict,
) {
    record_forwarded_n(session, cmd, verdict, &mut ReplyClock::new(), 1);
}

/// What a WAIT (or WAITAOF) is answered when the backend refused the PUBLISH sent before it
/// (a backend user without the channel, say): its count would cover only writes made on
/// its own connection, not the client's, so the count is not passed on. The error keeps
/// the backend's class (NOPERM) and says which channel the backend user needs.
fn wait_refused(publish_error: &[u8]) -> Bytes {
    // One line whatever the backend sent (a RESP3 blob error may hold line breaks).
    let text = String::from_utf8_lossy(publish_error).replace(['\r', '\n'], " ");
    let code = text
        .split(' ')
        .next()
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase()))
        .unwrap_or("ERR");
    let channel = String::from_utf8_lossy(crate::backend::remote::WAIT_SYNC_CHANNEL);
    router::error_frame(&format!(
        "{code} respgate: WAIT cannot count the replicas that have this client's writes: the backend refused the PUBLISH to {channel} that orders it after them ({text})"
    ))
}

/// One clock reading that times a chunk of forwarded replies. A pipeline's commands share
/// their start (the read that brought them), so their time is worked out once.
struct ReplyClock {
    now: std::time::Instant,
    last: Option<(std::time::Instant, std::time::Duration)>,
}

impl ReplyClock {
    fn new() -> ReplyClock {
        ReplyClock {
            now: std::time::Instant::now(),
            last: None,
        }
    }

    fn took(&mut self, started: std::time::Instant) -> std::time::Duration {
        match self.last {
            Some((at, took)) if at == started => took,
            _ => {
                let took = self.now.saturating_duration_since(started);
                self.last = Some((started, took));
                took
            }
        }
    }
}

/// [`record_forwarded`] for `n` alike commands, with the clock already read (one read for
/// a chunk of replies).
fn record_forwarded_n(
    session: &mut Session,
    cmd: Option<(&'static crate::command::CommandSpec, std::time::Instant)>,
    verdict: Verdict,
    clock: &mut ReplyClock,
    n: u64,
) {
    if n == 0 {
        return;
    }
    if let Some((spec, started)) = cmd {
        let took = clock.took(started);
        session.tally_forwarded(spec, took, verdict, n);
        if session.shared.slowlog.is_slow(took) {
            // A forwarded command's arguments are not kept while it is in flight (that
            // would cost every command a copy): its entry names the command only. Each
            // slow command has its entry, as in Redis.
            let args = [
                bytes::Bytes::from_static(spec.name.as_bytes()),
                bytes::Bytes::from_static(b"(arguments of forwarded commands are not kept)"),
            ];
            for _ in 0..n {
                session.log_slow(&args, took);
            }
        }
    }
}

/// The verdicts of consecutive whole replies, in order; only error replies (their bits in
/// `errors`) are looked at, so a run of successes costs nothing.
struct Verdicts<'a> {
    replies: &'a [u8],
    errors: u64,
    index: u32,
    offset: usize,
    scanner: crate::protocol::reply_scan::ReplyScanner,
}

impl<'a> Verdicts<'a> {
    fn new(replies: &'a [u8], errors: u64) -> Verdicts<'a> {
        Verdicts {
            replies,
            errors,
            index: 0,
            offset: 0,
            scanner: crate::protocol::reply_scan::ReplyScanner::new(),
        }
    }

    #[inline(always)]
    fn next(&mut self) -> Verdict {
        let i = self.index;
        self.index += 1;
        if i >= 64 || self.errors >> i == 0 {
            return Ok(());
        }
        self.at_error(i)
    }

    /// [`Self::next`] once an error reply is at or ahead of reply `i`.
    #[inline(never)]
    fn at_error(&mut self, i: u32) -> Verdict {
        // Replies up to the next error are skipped by length.
        let here = self.offset;
        if let Ok(Some(n)) = self
            .scanner
            .scan(&self.replies[here.min(self.replies.len())..])
        {
            self.offset += n;
        }
        if self.errors & (1 << i) != 0 {
            verdict_of_encoded(&self.replies[here.min(self.replies.len())..])
        } else {
            Ok(())
        }
    }
}

/// A tenant's reply that names keys or channels, without the tenant's prefix.
fn strip_tenant(
    session: &Session,
    strip: Option<crate::policy::namespace::Shape>,
    reply: bytes::Bytes,
    proto: crate::protocol::Protocol,
) -> bytes::Bytes {
    let Some(tenant) = &session.tenant else {
        return reply;
    };
    // A plain reply too if it is an error: error texts quote keys.
    let error = matches!(reply.first(), Some(b'-' | b'!'));
    let Some(shape) = strip.or(error.then_some(crate::policy::namespace::Shape::Plain)) else {
        return reply;
    };
    match crate::policy::replies::strip_raw(&tenant.namespace, shape, &reply, proto) {
        Ok(r) => r,
        Err(e) => {
            let mut err = BytesMut::new();
            crate::protocol::Reply::err(format!("ERR respgate: unreadable backend reply: {e}"))
                .encode(proto, &mut err);
            err.freeze()
        }
    }
}

/// The error replies among the consecutive replies in `out[start..]` (bit i of `errors`:
/// the i-th is one) without the tenant's prefix: error texts quote keys (`NOGROUP No such
/// key 'k' ...`). The rest are copied unchanged; only a tenant's replies with an error
/// among them come here.
fn strip_tenant_errors(
    ns: &crate::policy::namespace::Namespace,
    out: &mut BytesMut,
    start: usize,
    errors: u64,
    proto: crate::protocol::Protocol,
) {
    let replies = out.split_off(start).freeze();
    let mut scanner = crate::protocol::reply_scan::ReplyScanner::new();
    let mut at = 0;
    let mut i = 0u32;
    while at < replies.len() {
        let Ok(Some(n)) = scanner.scan(&replies[at..]) else {
            // Cut whole by the backend reader, so this cannot happen; keep the bytes as they are.
            out.extend_from_slice(&replies[at..]);
            return;
        };
        let reply = replies.slice(at..at + n);
        if i < 64 && errors & (1 << i) != 0 {
            let shape = crate::policy::namespace::Shape::Plain;
            match crate::policy::replies::strip_raw(ns, shape, &reply, proto) {
                Ok(stripped) => out.extend_from_slice(&stripped),
                Err(_) => out.extend_from_slice(&reply),
            }
        } else {
            out.extend_from_slice(&reply);
        }
        at += n;
        i += 1;
    }
}

/// How a blocked command's wait ended.
enum Woke {
    Served(crate::protocol::Reply),
    TimedOut,
    /// The client disconnected, was killed, or broke its query buffer limit.
    Gone,
}

/// Waits for a blocked command's reply or deadline. Meanwhile the client's further input is
/// only buffered (Redis runs nothing else for a blocked client), and its disconnect is noticed
/// so it stops waiting at once.
async fn wait_while_blocked<K: std::future::Future<Output = ()>>(
    shared: &Shared,
    killed: &mut std::pin::Pin<&mut K>,
    rd: &mut ReadHalf,
    parser: &mut RequestParser,
    handle: &ClientHandle,
    pending: &mut PendingBlock,
) -> Woke {
    let deadline = pending.deadline;
    let until_deadline = async move {
        match deadline {
            Some(t) => tokio::time::sleep_until(t.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    loop {
        tokio::select! {
            reply = &mut pending.reply => return match reply {
                Ok(r) => Woke::Served(r),
                // The engine dropped the waiter without a reply (cannot normally happen).
                Err(_) => Woke::TimedOut,
            },
            _ = &mut until_deadline => return Woke::TimedOut,
            _ = killed.as_mut() => return Woke::Gone,
            _ = handle.signalled(SHUTDOWN) => return Woke::TimedOut,
            read = rd.read_buf(parser.buffer_mut()) => match read {
                Ok(0) | Err(_) => return Woke::Gone,
                Ok(n) => {
                    shared.stats.input(n);
                    if parser.buffered() > shared.limits.max_query_buffer {
                        return Woke::Gone;
                    }
                }
            },
        }
    }
}

async fn recv_push(inbox: &mut Option<super::pubsub::Inbox>) -> Option<crate::protocol::Reply> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_or_forever(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Writes the pending replies. A client that does not read blocks this write; it ends
/// when the client is killed meanwhile (e.g. over its pub/sub output limit).
async fn write_out<K: std::future::Future<Output = ()>>(
    shared: &Shared,
    killed: &mut std::pin::Pin<&mut K>,
    wr: &mut WriteHalf,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    // The flush is a no-op on plain TCP; over TLS it sends what rustls still holds.
    let r = tokio::select! {
        biased;
        r = async { wr.write_all(out).await?; wr.flush().await } => r,
        _ = killed.as_mut() => Err(std::io::Error::other("client killed")),
    };
    shared.stats.output(out.len());
    out.clear();
    if out.capacity() > KEEP_CAPACITY {
        *out = BytesMut::with_capacity(16 * 1024);
    }
    r
}
