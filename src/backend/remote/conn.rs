//! One connection to a Redis server: a writer task and a reader task around a FIFO of the
//! replies still owed, so many clients' commands can be pipelined onto one socket and every
//! reply still finds its client.
//!
//! The invariant everything relies on: every batch the connection accepts gets exactly one
//! answer per owed reply — the backend's reply, or an error when the connection dies. A
//! client therefore never waits for a reply that cannot come, and never gets another
//! client's reply.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::{BackendError, Target};
use crate::net::{ReadHalf, Stream, WriteHalf};
use crate::protocol::reply_scan::{Frame, ReplyScanner, decode};

/// Where a client's forwarded replies arrive, in the order it sent the commands.
pub type ReplySink = mpsc::UnboundedSender<Result<Chunk, BackendError>>;

/// Where a connection's RESP3 push frames go (CLIENT TRACKING invalidations on a client's
/// pinned connection): `Some(frame)` for each push, `None` once when the connection dies
/// (whatever the backend tracked for it is gone).
pub type PushSink = Arc<dyn Fn(Option<Bytes>) + Send + Sync>;

/// `count` consecutive whole replies, as the backend sent them.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Bytes,
    pub count: u32,
    /// Bit i set: reply i is an error (a chunk holds at most [`MAX_CHUNK_REPLIES`]).
    pub errors: u64,
}

/// Replies per chunk, so that [`Chunk::errors`] has a bit for each.
pub const MAX_CHUNK_REPLIES: u32 = 64;

/// Write at most this much before letting the socket drain.
const WRITE_BATCH: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Consecutive replies the backend owes: to a client, or to nobody (`sink` None: MULTI's
/// `+OK`, the `QUEUED`s of a forwarded transaction, whose answers the client already had
/// from respgate). One entry for a client's whole pipeline: no sender clone (two atomic
/// operations, and two more to drop it) per command.
pub struct Owed {
    pub sink: Option<ReplySink>,
    pub count: u32,
}

/// The replies a batch owes: nearly always one entry (a client's pipeline), sometimes two
/// (a transaction's skipped `+OK` first), so they live inline, not in a heap allocation of
/// their own for every batch.
pub type OwedList = SmallVec<[Owed; 2]>;

impl Owed {
    /// Adds `n` replies owed to `sink` at the end of `owed`, extending the last entry when
    /// it is owed to the same.
    pub fn push(owed: &mut OwedList, sink: Option<&ReplySink>, n: usize) {
        let Ok(mut n) = u32::try_from(n) else {
            return;
        };
        if n == 0 {
            return;
        }
        if let Some(last) = owed.last_mut() {
            let same = match (&last.sink, sink) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_channel(b),
                _ => false,
            };
            if same {
                let room = u32::MAX - last.count;
                last.count += n.min(room);
                n -= n.min(room);
                if n == 0 {
                    return;
                }
            }
        }
        owed.push(Owed {
            sink: sink.cloned(),
            count: n,
        });
    }

    /// Answers every reply owed with `err`.
    fn answer(self, err: &BackendError) {
        if let Some(sink) = self.sink {
            for _ in 0..self.count {
                let _ = sink.send(Err(err.clone()));
            }
        }
    }
}

/// Commands (already RESP-encoded, possibly several) and the replies they will produce.
pub struct Batch {
    pub bytes: Bytes,
    pub owed: OwedList,
}

impl Batch {
    /// Answers every reply the batch owes with `err` (it was never sent).
    pub fn answer_all(self, err: &BackendError) {
        for o in self.owed {
            o.answer(err);
        }
    }
}

/// How a fresh connection is prepared before it carries clients' commands.
#[derive(Debug, Clone)]
pub struct Init {
    /// HELLO 3: replies arrive in RESP3, for RESP3 clients.
    pub resp3: bool,
    pub db: usize,
    /// Log in as this user instead of the target's (a tenant's own backend ACL user).
    pub user: Option<Arc<crate::policy::tenant::BackendUser>>,
}

struct ConnState {
    dead: AtomicBool,
    /// Tells both tasks to stop (set once, by whoever notices the failure first).
    stop: watch::Sender<bool>,
    why: Mutex<Option<BackendError>>,
    /// Owed replies in order, each with when its command was handed to the connection.
    inflight: Mutex<VecDeque<(Owed, Instant)>>,
    /// A `-READONLY` reply went by (checked by the reader task's owner).
    readonly_seen: AtomicBool,
    /// Who hears push frames (None: they are dropped).
    push: Mutex<Option<PushSink>>,
}

impl ConnState {
    fn fail(&self, why: BackendError) {
        {
            let mut slot = self.why.lock();
            if slot.is_none() {
                *slot = Some(why);
            }
        }
        self.dead.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        self.answer_inflight();
        // Taken, so the sink hears of the death once however often it is reported.
        let push = self.push.lock().take();
        if let Some(sink) = push {
            sink(None);
        }
    }

    fn error(&self) -> BackendError {
        self.why.lock().clone().unwrap_or(BackendError::Closed)
    }

    /// Answers every owed reply with the connection's error.
    fn answer_inflight(&self) {
        let owed: Vec<Owed> = self.inflight.lock().drain(..).map(|(o, _)| o).collect();
        let err = self.error();
        for o in owed {
            o.answer(&err);
        }
    }
}

/// A handle to one backend connection; cheap to clone. The connection closes when the last
/// handle is dropped (its queued commands are still answered).
#[derive(Clone)]
pub struct BackendConn {
    pub id: u64,
    // One Arc, so a clone is one atomic increment (clients clone it per command).
    inner: Arc<ConnHandle>,
}

struct ConnHandle {
    tx: mpsc::UnboundedSender<Batch>,
    state: Arc<ConnState>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// See [`BackendConn::downgrade`].
pub struct WeakConn(std::sync::Weak<ConnState>);

impl WeakConn {
    pub fn alive(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|s| !s.dead.load(Ordering::Acquire))
    }

    pub fn kill(&self, why: BackendError) {
        if let Some(state) = self.0.upgrade() {
            state.fail(why);
        }
    }
}

impl BackendConn {
    /// Starts connecting in the background; commands sent meanwhile wait for the handshake.
    pub fn spawn(target: Arc<Target>, init: Init) -> BackendConn {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, _) = watch::channel(false);
        let state = Arc::new(ConnState {
            dead: AtomicBool::new(false),
            stop,
            why: Mutex::new(None),
            inflight: Mutex::new(VecDeque::new()),
            readonly_seen: AtomicBool::new(false),
            push: Mutex::new(None),
        });
        tokio::spawn(run(target, init, rx, state.clone()));
        BackendConn {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            inner: Arc::new(ConnHandle { tx, state }),
        }
    }

    /// A handle that does not keep the connection open (for closing it on a failover).
    pub fn downgrade(&self) -> WeakConn {
        WeakConn(Arc::downgrade(&self.inner.state))
    }

    /// Why the connection died (meaningful once it is dead).
    pub fn error(&self) -> BackendError {
        self.inner.state.error()
    }

    pub fn is_dead(&self) -> bool {
        self.inner.state.dead.load(Ordering::Acquire)
    }

    /// Sends this connection's push frames to `sink` (None: drop them again). A sink set on
    /// a connection that is already dead hears of it at once.
    pub fn set_push_sink(&self, sink: Option<PushSink>) {
        let state = &self.inner.state;
        *state.push.lock() = sink;
        if self.is_dead() {
            let push = state.push.lock().take();
            if let Some(sink) = push {
                sink(None);
            }
        }
    }

    /// Queues a batch. On a dead connection it is refused and handed back with the reason.
    pub fn send(&self, batch: Batch) -> Result<(), (Batch, BackendError)> {
        let state = &self.inner.state;
        if self.is_dead() {
            return Err((batch, state.error()));
        }
        self.inner.tx.send(batch).map_err(|e| (e.0, state.error()))
    }

    /// Gives up on the connection (a reply took too long): everything owed is answered with
    /// `why`, and the next user gets a fresh connection.
    pub fn kill(&self, why: BackendError) {
        self.inner.state.fail(why);
    }
}

async fn run(
    target: Arc<Target>,
    init: Init,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    state: Arc<ConnState>,
) {
    let mut stopped = state.stop.subscribe();
    let generation = target.generation();
    let connected = tokio::select! {
        c = connect(&target, init) => c,
        _ = stopped.wait_for(|s| *s) => Err(state.error()),
    };
    // The master changed while we connected: this may be the old one.
    let connected = connected.and_then(|c| {
        if target.generation() == generation {
            Ok(c)
        } else {
            Err(BackendError::Failover)
        }
    });
    let node = target.address();
    match connected {
        Ok(stream) => {
            metrics::counter!(crate::metrics::BACKEND_CONNECTS, "node" => node.clone())
                .increment(1);
            let open = metrics::gauge!(crate::metrics::BACKEND_CONNECTIONS, "node" => node.clone());
            open.increment(1.0);
            let (rd, wr) = stream.into_split();
            let round_trip = crate::metrics::backend_histogram(&node);
            let reader = tokio::spawn(read_replies(rd, state.clone(), target.clone(), round_trip));
            write_batches(wr, &mut rx, &state).await;
            // The writer is done (all handles dropped, or the connection failed): stop the
            // reader too, closing the socket; with our handles gone nobody waits for more.
            if state.dead.load(Ordering::Acquire) {
                count_error(&node, &state.error());
            } else {
                state.fail(BackendError::Closed);
            }
            let _ = reader.await;
            open.decrement(1.0);
        }
        Err(e) => {
            target.recheck.notify_one();
            count_error(&node, &e);
            state.fail(e)
        }
    }
    // Answer whatever is still queued or owed: nothing accepted goes unanswered (the
    // closed queue refuses what clients try to add from now on).
    rx.close();
    while let Ok(batch) = rx.try_recv() {
        batch.answer_all(&state.error());
    }
    state.answer_inflight();
}

/// Counts a backend connection that failed or was lost, by kind.
fn count_error(node: &str, e: &BackendError) {
    let kind = match e {
        BackendError::Unavailable(_) => "connect",
        BackendError::Tls(_) | BackendError::Refused(_) => "auth",
        BackendError::Io(_) => "io",
        BackendError::Closed => "closed",
        BackendError::Timeout(_) => "timeout",
        BackendError::Protocol(_) => "protocol",
        BackendError::Failover => "failover",
    };
    metrics::counter!(crate::metrics::BACKEND_ERRORS, "node" => node.to_string(), "kind" => kind)
        .increment(1);
}

async fn write_batches(
    mut wr: WriteHalf,
    rx: &mut mpsc::UnboundedReceiver<Batch>,
    state: &ConnState,
) {
    let mut stopped = state.stop.subscribe();
    // One stop future for the task's life (it returns once it fires).
    let stop = stopped.wait_for(|s| *s);
    tokio::pin!(stop);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        if buf.is_empty() {
            let batch = tokio::select! {
                biased;
                m = rx.recv() => m,
                _ = &mut stop => None,
            };
            match batch {
                Some(b) => absorb(b, &mut buf, state),
                None => return,
            }
            // Let the other clients woken in this round queue their commands first: they
            // then leave in one write, and the server wakes once for all of them. Writing
            // each client's command at once cost a system call and a server wake-up per
            // request, and unpipelined clients twice the CPU per request.
            tokio::task::yield_now().await;
        }
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(b) => absorb(b, &mut buf, state),
                Err(_) => break,
            }
        }
        if state.dead.load(Ordering::Acquire) {
            // Failed meanwhile: what we just recorded is answered by the final sweep.
            return;
        }
        // The flush is a no-op on plain TCP; over TLS it pushes out the records rustls still
        // holds when the socket was full (the replies to them would otherwise never come).
        let written = tokio::select! {
            biased;
            r = async { wr.write_all(&buf).await?; wr.flush().await } => r,
            _ = &mut stop => return,
        };
        if let Err(e) = written {
            state.fail(BackendError::Io(e.to_string()));
            return;
        }
        buf.clear();
        if buf.capacity() > 4 * WRITE_BATCH {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
}

/// Takes one batch into the write buffer, recording its owed replies first (so the reader
/// always finds them).
fn absorb(batch: Batch, buf: &mut BytesMut, state: &ConnState) {
    let now = Instant::now();
    state
        .inflight
        .lock()
        .extend(batch.owed.into_iter().map(|o| (o, now)));
    buf.extend_from_slice(&batch.bytes);
}

async fn read_replies(
    mut rd: ReadHalf,
    state: Arc<ConnState>,
    target: Arc<Target>,
    round_trip: Arc<crate::metrics::commands::DurationHistogram>,
) {
    let timed = crate::metrics::enabled();
    let mut stopped = state.stop.subscribe();
    let stop = stopped.wait_for(|s| *s);
    tokio::pin!(stop);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scanner = ReplyScanner::new();
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            r = rd.read_buf(&mut buf) => r,
            _ = &mut stop => return,
        };
        match read {
            Ok(0) => {
                target.recheck.notify_one();
                return state.fail(BackendError::Closed);
            }
            Err(e) => {
                target.recheck.notify_one();
                return state.fail(BackendError::Io(e.to_string()));
            }
            Ok(_) => {}
        }
        let now = timed.then(Instant::now);
        if let Err(e) = hand_out(&mut buf, &mut scanner, &state, now, &round_trip) {
            return state.fail(e);
        }
        if state.readonly_seen.swap(false, Ordering::AcqRel) {
            target.recheck.notify_one();
        }
    }
}

/// Cuts the complete replies at the front of `buf` and hands them to their clients.
/// Consecutive replies for the same client leave as one chunk (no per-reply split, send or
/// wake-up: a pipeline's replies usually arrive together).
/// `now` (when metrics are on) times each reply's round trip from when its command was
/// handed to the connection; replies sent together are recorded together.
fn hand_out(
    buf: &mut BytesMut,
    scanner: &mut ReplyScanner,
    state: &ConnState,
    now: Option<Instant>,
    round_trip: &crate::metrics::commands::DurationHistogram,
) -> Result<(), BackendError> {
    let mut inflight = state.inflight.lock();
    // The run of replies at the front of `buf` (`run_len` bytes) owed to one client, its
    // count and error bits.
    let mut run: Option<(ReplySink, u32, u64)> = None;
    let mut run_len = 0;
    // Replies whose commands were sent at the same instant, not yet recorded.
    let mut timing: Option<(Instant, u64)> = None;
    let emit =
        |buf: &mut BytesMut, run: &mut Option<(ReplySink, u32, u64)>, run_len: &mut usize| {
            if let Some((sink, count, errors)) = run.take() {
                let bytes = buf.split_to(*run_len).freeze();
                let _ = sink.send(Ok(Chunk {
                    bytes,
                    count,
                    errors,
                }));
            }
            *run_len = 0;
        };
    let record = |timing: Option<(Instant, u64)>| {
        if let (Some(now), Some((sent, n))) = (now, timing) {
            round_trip.record_many(now.saturating_duration_since(sent), n);
        }
    };
    loop {
        let n = match scanner.scan(&buf[run_len..]) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => return Err(BackendError::Protocol(e.to_string())),
        };
        if buf[run_len] == b'-' && buf[run_len..].starts_with(b"-READONLY") {
            // Our master became a replica: Sentinel mode looks for the new one now.
            state.readonly_seen.store(true, Ordering::Release);
        }
        if buf[run_len] == b'>' {
            // Out-of-band RESP3 push (a tracking invalidation): not a reply. The replies
            // before it leave first, so a client never sees an invalidation before the
            // reply it invalidates.
            emit(buf, &mut run, &mut run_len);
            let frame = buf.split_to(n).freeze();
            let sink = state.push.lock().clone();
            match sink {
                Some(sink) => sink(Some(frame)),
                None => tracing::debug!("dropping an unsolicited push frame from the backend"),
            }
            continue;
        }
        let is_error = matches!(buf[run_len], b'-' | b'!');
        let Some((owed, sent)) = inflight.front_mut() else {
            emit(buf, &mut run, &mut run_len);
            return Err(BackendError::Protocol(
                "a reply nobody asked for".to_string(),
            ));
        };
        match timing.as_mut() {
            Some((at, n)) if at == sent => *n += 1,
            _ => {
                record(timing.take());
                timing = Some((*sent, 1));
            }
        }
        match &owed.sink {
            Some(sink) => {
                match run.as_mut() {
                    Some((current, count, errors))
                        if *count < MAX_CHUNK_REPLIES && current.same_channel(sink) =>
                    {
                        *errors |= u64::from(is_error) << *count;
                        *count += 1;
                    }
                    _ => {
                        let sink = sink.clone();
                        emit(buf, &mut run, &mut run_len);
                        run = Some((sink, 1, u64::from(is_error)));
                    }
                }
                run_len += n;
            }
            None => {
                emit(buf, &mut run, &mut run_len);
                buf.advance(n);
            }
        }
        owed.count -= 1;
        if owed.count == 0 {
            inflight.pop_front();
        }
    }
    emit(buf, &mut run, &mut run_len);
    record(timing);
    Ok(())
}

/// A subscriber connection that takes turns (the pub/sub bridges): it writes what was
/// queued in `out`, then waits for either something to queue or frames to read. Reads and
/// writes never overlap, so the stream needs no splitting.
pub struct TurnTaking {
    stream: Stream,
    buf: BytesMut,
    scanner: ReplyScanner,
    /// Commands waiting for the next [`TurnTaking::flush`].
    pub out: BytesMut,
}

impl TurnTaking {
    pub fn new(stream: Stream) -> TurnTaking {
        TurnTaking {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            scanner: ReplyScanner::new(),
            out: BytesMut::new(),
        }
    }

    /// Writes what is queued; Err: the connection is gone (why).
    pub async fn flush(&mut self) -> Result<(), String> {
        if !self.out.is_empty() {
            write_flush(&mut self.stream, &self.out)
                .await
                .map_err(|e| e.to_string())?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads what the server sent (cancel-safe, for a select); Err: the connection is gone.
    pub async fn read_more(&mut self) -> Result<(), String> {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("closed by the server".to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Reads what the server sent and hands each whole frame to `each` (cancel-safe, for a
    /// select: frames are handed out only once the read completed); Err: the connection is
    /// gone or the server broke the protocol.
    pub async fn read_frames(&mut self, mut each: impl FnMut(Bytes)) -> Result<(), String> {
        self.read_more().await?;
        while let Some(frame) = self.next_frame()? {
            each(frame);
        }
        Ok(())
    }

    /// The next whole frame read so far, if any; Err: the server broke the protocol.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, String> {
        match self.scanner.scan(&self.buf) {
            Ok(Some(n)) => Ok(Some(self.buf.split_to(n).freeze())),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Opens a connection (TCP, then TLS if configured) and runs the handshake
/// (AUTH / HELLO 3 / SELECT), all within the connect timeout.
pub async fn connect(target: &Target, init: Init) -> Result<Stream, BackendError> {
    let fut = async {
        let address = target.address();
        if address.is_empty() {
            // Sentinel mode before any sentinel answered.
            return Err(BackendError::Unavailable(
                "the master is not known yet (no sentinel has named it)".into(),
            ));
        }
        let tcp = TcpStream::connect(&address)
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut stream = match &target.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = tls.server_name_for(&address).map_err(BackendError::Tls)?;
                let tls = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| BackendError::Tls(e.to_string()))?;
                Stream::Tls(Box::new(tls.into()))
            }
        };
        let (username, password) = match &init.user {
            Some(u) => (Some(u.username.as_str()), Some(u.password.as_str())),
            None => (target.username.as_deref(), target.password.as_deref()),
        };
        let mut hello = Vec::new();
        if init.resp3 {
            let mut args: Vec<&[u8]> = vec![b"HELLO", b"3"];
            if let Some(pass) = password {
                let user = username.unwrap_or("default");
                args.extend([b"AUTH".as_slice(), user.as_bytes(), pass.as_bytes()]);
            }
            hello.push(args);
        } else if let Some(pass) = password {
            match username {
                Some(user) => {
                    hello.push(vec![b"AUTH".as_slice(), user.as_bytes(), pass.as_bytes()])
                }
                None => hello.push(vec![b"AUTH".as_slice(), pass.as_bytes()]),
            }
        }
        let db = init.db.to_string();
        if init.db != 0 {
            hello.push(vec![b"SELECT".as_slice(), db.as_bytes()]);
        }
        for args in &hello {
            let reply = round_trip(&mut stream, args).await?;
            if let Frame::Error(e) = decode(&reply) {
                return Err(BackendError::Refused(
                    String::from_utf8_lossy(&e).into_owned(),
                ));
            }
        }
        Ok(stream)
    };
    match tokio::time::timeout(target.connect_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(BackendError::Unavailable(format!(
            "no connection within {} ms",
            target.connect_timeout.as_millis()
        ))),
    }
}

/// Sends one command and reads its one reply (handshakes only).
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    args: &[&[u8]],
) -> Result<Bytes, BackendError> {
    let mut out = BytesMut::new();
    encode_command(&mut out, args);
    write_flush(stream, &out).await?;
    let mut buf = BytesMut::with_capacity(1024);
    let mut scanner = ReplyScanner::new();
    loop {
        if let Some(n) = scanner
            .scan(&buf)
            .map_err(|e| BackendError::Protocol(e.to_string()))?
        {
            return Ok(buf.split_to(n).freeze());
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err(BackendError::Closed),
            Ok(_) => {}
            Err(e) => return Err(BackendError::Io(e.to_string())),
        }
    }
}

/// Writes `bytes` and flushes them (over TLS, a write may leave records inside rustls).
pub async fn write_flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> Result<(), BackendError> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| BackendError::Io(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| BackendError::Io(e.to_string()))
}

/// RESP multibulk encoding of one command.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"*");
    out.extend_from_slice(num.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(b"$");
        out.extend_from_slice(num.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// How long to wait before reconnecting after a failure, so a down backend is not hammered.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_replies_are_kept_as_runs_per_client_and_each_is_answered() {
        let (a, mut a_rx) = mpsc::unbounded_channel();
        let (b, mut b_rx) = mpsc::unbounded_channel();
        let mut owed = OwedList::new();
        Owed::push(&mut owed, None, 2);
        Owed::push(&mut owed, None, 1);
        Owed::push(&mut owed, Some(&a), 1);
        Owed::push(&mut owed, Some(&a), 3);
        Owed::push(&mut owed, Some(&b), 0);
        Owed::push(&mut owed, Some(&b), 2);
        Owed::push(&mut owed, Some(&a), 1);
        let runs: Vec<(bool, u32)> = owed.iter().map(|o| (o.sink.is_some(), o.count)).collect();
        assert_eq!(runs, vec![(false, 3), (true, 4), (true, 2), (true, 1)]);
        Batch {
            bytes: Bytes::new(),
            owed,
        }
        .answer_all(&BackendError::Closed);
        let count = |rx: &mut mpsc::UnboundedReceiver<Result<Chunk, BackendError>>| {
            std::iter::from_fn(|| rx.try_recv().ok())
                .inspect(|r| assert!(r.is_err()))
                .count()
        };
        assert_eq!(count(&mut a_rx), 5);
        assert_eq!(count(&mut b_rx), 2);
    }
}
