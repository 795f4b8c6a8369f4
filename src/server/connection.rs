//! One client connection's task: read, parse every complete command, run them in order,
//! and write the batch of replies with one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use super::Shared;
use super::session::Session;
use crate::protocol::RequestParser;

/// Flush replies early when a pipeline's output grows past this, so a long pipeline of big
/// replies is streamed instead of buffered whole.
const FLUSH_AT: usize = 64 * 1024;
/// Give back buffer memory after a burst.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Refuses a client over max_clients the way Redis does, then closes.
pub async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}

pub async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.listen_addr);
    let registration = shared.clients.register(peer, local);
    let handle = registration.handle.clone();
    crate::metrics::handles().connected_clients.increment(1.0);
    let mut session = Session::new(shared.clone(), handle.clone());
    let mut parser = RequestParser::new(shared.limits.clone());
    let mut out = BytesMut::with_capacity(16 * 1024);
    let (mut rd, mut wr) = stream.into_split();

    'conn: loop {
        // Run every complete command already buffered, in order.
        loop {
            match parser.next_command() {
                Ok(Some(argv)) => {
                    session.handle(argv, &mut out);
                    if session.closing {
                        break;
                    }
                    if out.len() >= FLUSH_AT && write_out(&shared, &mut wr, &mut out).await.is_err()
                    {
                        break 'conn;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Redis replies with the error, then closes the connection.
                    shared.stats.protocol_error();
                    debug!(client = %peer, error = %e, "protocol error, closing");
                    out.extend_from_slice(b"-");
                    out.extend_from_slice(e.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                    let _ = write_out(&shared, &mut wr, &mut out).await;
                    break 'conn;
                }
            }
        }
        if !out.is_empty() && write_out(&shared, &mut wr, &mut out).await.is_err() {
            break;
        }
        if session.closing || *shutdown.borrow() || handle.is_killed() {
            break;
        }
        handle.info.lock().qbuf = parser.buffered();
        let idle = shared.idle_timeout();
        tokio::select! {
            _ = handle.killed() => break,
            // On shutdown, finish what was already received (loop once more), then close.
            _ = shutdown.changed() => continue,
            _ = sleep_or_forever(idle) => {
                debug!(client = %peer, "idle timeout, closing");
                break;
            }
            Some(msg) = recv_push(&mut session.push_rx) => {
                session.deliver(msg, &mut out);
                // Deliver whatever else is queued in the same write.
                while let Some(rx) = session.push_rx.as_mut() {
                    match rx.try_recv() {
                        Ok(m) => session.deliver(m, &mut out),
                        Err(_) => break,
                    }
                    if out.len() >= FLUSH_AT { break; }
                }
            }
            read = rd.read_buf(parser.buffer_mut()) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    shared.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
        }
    }
    let _ = wr.shutdown().await;
    crate::metrics::handles().connected_clients.decrement(1.0);
}

async fn recv_push(
    rx: &mut Option<tokio::sync::mpsc::Receiver<crate::protocol::Reply>>,
) -> Option<crate::protocol::Reply> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_or_forever(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn write_out(
    shared: &Shared,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let r = wr.write_all(out).await;
    shared
        .stats
        .net_output_bytes
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    if out.capacity() > KEEP_CAPACITY {
        *out = BytesMut::with_capacity(16 * 1024);
    }
    r
}
