//! A bounded TCP relay on 127.0.0.1 between a client and a server on
//! loopback, that can freeze the connections it holds: it stops reading
//! and forwarding in both directions without closing anything, as a stuck
//! middlebox would. Its own kernel still acknowledges what arrives until
//! the receive buffer is full, and still answers keepalive probes.
//!
//! Every thread checks a stop flag at least every 50 ms; dropping the relay
//! stops and joins them all and closes every socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Connections a relay takes at most; later ones are closed at once.
const MAX_CONNECTIONS: usize = 32;
const TICK: Duration = Duration::from_millis(50);

struct Held {
    client: TcpStream,
    server: TcpStream,
    frozen: Arc<AtomicBool>,
}

/// A running relay; stopped when dropped.
pub struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<Held>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying connections made to [`port`](Self::port) on
    /// 127.0.0.1 to `upstream`, which must be a loopback address.
    ///
    /// # Panics
    /// When `upstream` is not on loopback or no port is free.
    pub fn start(upstream: SocketAddr) -> Relay {
        assert!(
            upstream.ip().is_loopback(),
            "the relay only forwards to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::<Held>::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, held, threads) = (stop.clone(), held.clone(), threads.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    let mut held = held.lock().unwrap();
                    if held.len() >= MAX_CONNECTIONS {
                        continue;
                    }
                    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                    else {
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let frozen = Arc::new(AtomicBool::new(false));
                    let mut threads = threads.lock().unwrap();
                    for (from, to) in [(&client, &server), (&server, &client)] {
                        let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                        let (stop, frozen) = (stop.clone(), frozen.clone());
                        threads.push(thread::spawn(move || pump(from, to, &stop, &frozen)));
                    }
                    held.push(Held {
                        client,
                        server,
                        frozen,
                    });
                }
            })
        };
        Relay {
            port,
            stop,
            held,
            threads,
            acceptor: Some(acceptor),
        }
    }

    /// The relay's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes every connection the relay holds now: nothing more is read
    /// or forwarded on them, and nothing is closed. Later connections are
    /// relayed as usual.
    pub fn freeze(&self) {
        for held in self.held.lock().unwrap().iter() {
            held.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// How many connections the relay holds.
    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// Copies `from` to `to` until either closes, the relay stops, or for ever
/// not at all once frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool, frozen: &AtomicBool) {
    let _ = from.set_read_timeout(Some(TICK));
    let _ = to.set_write_timeout(Some(TICK));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        if frozen.load(Ordering::SeqCst) {
            thread::sleep(TICK);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                let mut rest = &buf[..n];
                while !rest.is_empty() && !stop.load(Ordering::SeqCst) {
                    match to.write(rest) {
                        Ok(0) => return,
                        Ok(k) => rest = &rest[k..],
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => return,
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for held in self.held.lock().unwrap().drain(..) {
            let _ = held.client.shutdown(Shutdown::Both);
            let _ = held.server.shutdown(Shutdown::Both);
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}
