//! A TLS sink on 127.0.0.1 for `make bench-fluent-bit`'s floor: it accepts TLS connections with
//! the strict endpoint's server set-up, reads everything and discards it, so a client's cost to
//! encrypt and send bytes can be measured with nothing else on its path.

use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

pub struct TlsSink {
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
}

impl TlsSink {
    pub fn start() -> TlsSink {
        let (server, ca_pem) = crate::strict::tls_server_config();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(server) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = vec![0u8; 256 << 10];
                    while matches!(tls.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        // the ring provider's default suites, as the plugin's HTTPS client (rustls-ring) offers
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsSink { addr, client: Arc::new(client) }
    }

    /// A new TLS connection to the sink, handshake done; returns the stream and the suite agreed.
    pub fn connect(&self) -> (Box<dyn Write + Send>, String) {
        let tcp = TcpStream::connect(self.addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(self.client.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        let suite = tls.conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        (Box::new(tls), suite)
    }
}
