//! The TCP fault proxy: one listener per directed node-to-node link (`from` dials `to`), so
//! the nemesis can cut any link without touching the kernel's firewall.
//!
//! Node `from` is configured to reach node `to` through `127.0.0.1:<listen port of (from,to)>`
//! (the node's `initial_cluster[].peer_addr`); the proxy copies bytes both ways to `to`'s real
//! gRPC address. A cut link behaves like a dropped-packet partition: bytes stop flowing in both
//! directions of every connection on that link (nothing is closed, so the nodes see timeouts,
//! not resets), and new connections are accepted but never forwarded.
//!
//! How a link freezes: every link has a `watch` channel holding its cut flag. Each connection
//! runs two copy loops (one per direction) that read into their own buffer and write it to the
//! other socket. Before every read and before every write a loop waits, on that channel, until
//! the link is not cut. A frozen loop therefore sleeps in `watch::Receiver::wait_for` (no
//! spinning, no polling) and stops reading its socket, so the kernel's buffers fill and TCP
//! flow control stalls the sender, as with a real partition. Bytes already read when the cut
//! came are held in the buffer and delivered after the heal, like retransmitted segments. A
//! connection accepted while its link is cut is held, unread and not yet connected to the
//! target, until the link heals.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cluster::HarnessError;

/// One directed link: node `from` dials node `to`, whose real address is `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The dialing node.
    pub from: u64,
    /// The dialed node.
    pub to: u64,
    /// `to`'s real gRPC address.
    pub target: SocketAddr,
}

/// Size of each copy loop's buffer.
const COPY_BUFFER: usize = 64 * 1024;

/// All proxied links of a cluster and their cut/healed state.
pub struct ProxyNet {
    /// Cut flag of every directed link, `true` = cut.
    links: BTreeMap<(u64, u64), watch::Sender<bool>>,
    /// Every listener and connection task.
    tasks: Arc<Mutex<Tasks>>,
}

/// The tasks of the net. Once `closed`, no task is spawned any more.
#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    closed: bool,
}

impl Tasks {
    /// Spawns `fut` unless the net is shut down; reaps finished tasks on the way.
    fn spawn<F>(tasks: &Mutex<Tasks>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut t = tasks.lock().unwrap_or_else(|e| e.into_inner());
        if t.closed {
            return;
        }
        while t.set.try_join_next().is_some() {}
        t.set.spawn(fut);
    }
}

impl ProxyNet {
    /// Starts a listener on `127.0.0.1:0` for every link; returns the net and each link's
    /// listen address keyed by `(from, to)`.
    pub async fn start(
        links: &[Link],
    ) -> Result<(ProxyNet, HashMap<(u64, u64), SocketAddr>), HarnessError> {
        let tasks = Arc::new(Mutex::new(Tasks::default()));
        let mut flags = BTreeMap::new();
        let mut addrs = HashMap::new();
        let mut listeners = Vec::new();
        for link in links {
            if flags.contains_key(&(link.from, link.to)) {
                return Err(HarnessError::Io {
                    what: format!("proxy link {} -> {}", link.from, link.to),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the link is listed twice",
                    ),
                });
            }
            let listener =
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| HarnessError::Io {
                        what: format!("binding the proxy of link {} -> {}", link.from, link.to),
                        source,
                    })?;
            let addr = listener.local_addr().map_err(|source| HarnessError::Io {
                what: "reading a proxy listener's address".into(),
                source,
            })?;
            let (tx, _) = watch::channel(false);
            flags.insert((link.from, link.to), tx);
            addrs.insert((link.from, link.to), addr);
            listeners.push((*link, listener));
        }
        for (link, listener) in listeners {
            let cut = flags[&(link.from, link.to)].subscribe();
            let t = Arc::clone(&tasks);
            Tasks::spawn(&tasks, accept_loop(link, listener, cut, t));
        }
        Ok((
            ProxyNet {
                links: flags,
                tasks,
            },
            addrs,
        ))
    }

    /// Cuts the directed link `from` → `to` (idempotent).
    pub fn cut(&self, from: u64, to: u64) {
        match self.links.get(&(from, to)) {
            Some(flag) => {
                flag.send_replace(true);
            }
            None => tracing::warn!(from, to, "cut: no such proxied link"),
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: u64, b: u64) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Heals every link; frozen connections resume.
    pub fn heal(&self) {
        for flag in self.links.values() {
            flag.send_if_modified(|cut| std::mem::replace(cut, false));
        }
    }

    /// Heals the directed link `from` → `to` only (idempotent).
    pub fn heal_link(&self, from: u64, to: u64) {
        if let Some(flag) = self.links.get(&(from, to)) {
            flag.send_if_modified(|cut| std::mem::replace(cut, false));
        }
    }

    /// Whether the directed link `from` → `to` is cut (`false` for an unknown link).
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.links.get(&(from, to)).is_some_and(|f| *f.borrow())
    }

    /// Every proxied directed link `(from, to)`, sorted.
    pub fn links(&self) -> Vec<(u64, u64)> {
        self.links.keys().copied().collect()
    }

    /// The currently cut directed links, sorted.
    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.links
            .iter()
            .filter(|(_, f)| *f.borrow())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Stops every listener and connection.
    pub async fn shutdown(&self) {
        let mut set = {
            let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            t.closed = true;
            std::mem::take(&mut t.set)
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

impl Drop for ProxyNet {
    fn drop(&mut self) {
        // Dropping the JoinSet aborts whatever is still running.
        let mut t = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        t.closed = true;
        t.set.abort_all();
    }
}

/// Accepts connections on one link's listener, forever (until aborted).
async fn accept_loop(
    link: Link,
    listener: TcpListener,
    cut: watch::Receiver<bool>,
    tasks: Arc<Mutex<Tasks>>,
) {
    loop {
        match listener.accept().await {
            Ok((inbound, _)) => {
                let cut = cut.clone();
                Tasks::spawn(&tasks, async move {
                    if let Err(e) = serve(link, inbound, cut).await {
                        tracing::debug!(from = link.from, to = link.to, "proxy connection: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(from = link.from, to = link.to, "proxy accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until the link is not cut. Returns at once when it is healed; a closed channel (the
/// net is gone) counts as healed so the task can finish.
async fn healed(cut: &mut watch::Receiver<bool>) {
    let _ = cut.wait_for(|c| !*c).await;
}

/// One proxied connection: hold it while the link is cut, then connect to the target and copy
/// both ways.
async fn serve(
    link: Link,
    inbound: TcpStream,
    mut cut: watch::Receiver<bool>,
) -> std::io::Result<()> {
    healed(&mut cut).await;
    let outbound = TcpStream::connect(link.target).await?;
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    // An error in either direction ends both (the sockets are dropped, as a reset would).
    tokio::try_join!(
        copy(in_r, out_w, cut.clone()),
        copy(out_r, in_w, cut.clone())
    )?;
    Ok(())
}

/// Copies `from` to `to` until end of stream, never reading or writing while the link is cut.
async fn copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        healed(&mut cut).await;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            healed(&mut cut).await;
            // Half-close: the peer sees end of stream, the other direction goes on.
            let _ = to.shutdown().await;
            return Ok(());
        }
        healed(&mut cut).await;
        to.write_all(&buf[..n]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An echo server on 127.0.0.1:0.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn read_some(s: &mut TcpStream, want: usize, within: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 1024];
        while got.len() < want {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read: {e}"),
            }
        }
        got
    }

    async fn one_link() -> (ProxyNet, SocketAddr) {
        let target = echo_server().await;
        let (net, addrs) = ProxyNet::start(&[Link {
            from: 1,
            to: 2,
            target,
        }])
        .await
        .unwrap();
        (net, addrs[&(1, 2)])
    }

    #[tokio::test]
    async fn bytes_flow_through_a_healthy_link() {
        let (net, addr) = one_link().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        assert_eq!(read_some(&mut s, 5, Duration::from_secs(5)).await, b"hello");
        // A large transfer crosses several buffers.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let data = big.clone();
        let writer = tokio::spawn(async move { w.write_all(&data).await.unwrap() });
        let mut got = vec![0u8; big.len()];
        tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        assert_eq!(got, big);
        net.shutdown().await;
    }

    #[tokio::test]
    async fn a_cut_freezes_an_existing_connection_and_heal_resumes_it() {
        let (net, addr) = one_link().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"before").await.unwrap();
        assert_eq!(
            read_some(&mut s, 6, Duration::from_secs(5)).await,
            b"before"
        );

        net.cut(1, 2);
        assert!(net.is_cut(1, 2));
        s.write_all(b"during").await.unwrap();
        assert!(
            read_some(&mut s, 1, Duration::from_millis(300))
                .await
                .is_empty(),
            "bytes crossed a cut link"
        );

        net.heal();
        assert_eq!(
            read_some(&mut s, 6, Duration::from_secs(5)).await,
            b"during"
        );
        net.shutdown().await;
    }

    #[tokio::test]
    async fn a_connection_opened_while_cut_is_held_until_heal() {
        let (net, addr) = one_link().await;
        net.cut(1, 2);
        // The connection is accepted (no refusal) but nothing is forwarded.
        let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        s.write_all(b"held").await.unwrap();
        assert!(read_some(&mut s, 1, Duration::from_millis(300))
            .await
            .is_empty());
        net.heal();
        assert_eq!(read_some(&mut s, 4, Duration::from_secs(5)).await, b"held");
        net.shutdown().await;
    }

    #[tokio::test]
    async fn cut_links_reports_what_is_cut() {
        let target = echo_server().await;
        let links: Vec<Link> = [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)]
            .into_iter()
            .map(|(from, to)| Link { from, to, target })
            .collect();
        let (net, addrs) = ProxyNet::start(&links).await.unwrap();
        assert_eq!(addrs.len(), 6);
        assert_eq!(net.links().len(), 6);
        assert!(net.cut_links().is_empty());
        net.cut(2, 3);
        net.cut(2, 3);
        net.cut_both(1, 3);
        assert_eq!(net.cut_links(), vec![(1, 3), (2, 3), (3, 1)]);
        net.heal_link(3, 1);
        assert_eq!(net.cut_links(), vec![(1, 3), (2, 3)]);
        net.cut(7, 8); // unknown: ignored
        net.heal();
        assert!(net.cut_links().is_empty());
        net.shutdown().await;
    }

    #[tokio::test]
    async fn shutdown_stops_listeners_and_connections() {
        let (net, addr) = one_link().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"x").await.unwrap();
        assert_eq!(read_some(&mut s, 1, Duration::from_secs(5)).await, b"x");
        net.shutdown().await;
        // The proxied connection is closed and the listener is gone.
        let mut buf = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("the connection was not closed");
        assert!(matches!(r, Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
