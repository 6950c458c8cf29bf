//! Connections: a connector that dials one fixed socket address (an endpoint is one resolved
//! address, whatever the name in the URL) under a timeout, with TCP_NODELAY, and speaks TLS
//! (rustls with the `ring` provider) when the endpoint asks for it, verifying the configured
//! host name. tonic (gRPC) and hyper's pooled client (HTTP) both use it, so TLS, timeouts and
//! address choice are decided in one place.

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use sonde_config::OtlpTlsConfig;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Why the client's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {}: {reason}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "no trusted CA certificate in the system store: install ca-certificates or set tls.ca_file"
    )]
    NoRoots,
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
    #[error("client certificate: {0}")]
    ClientCertificate(rustls::Error),
    #[error("`{name}` is not a valid TLS server name")]
    ServerName { name: String },
}

fn file_error<'a>(
    key: &'static str,
    path: &'a Path,
) -> impl Fn(&dyn std::fmt::Display) -> TlsError + 'a {
    move |e| TlsError::File {
        key,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Builds the rustls client configuration: trusted roots (the CA file, else the system store),
/// an optional client certificate, and the ALPN protocols to offer.
pub fn tls_config(cfg: &OtlpTlsConfig, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &cfg.ca_file {
        let bad_ca = file_error("tls.ca_file", ca);
        let certs = CertificateDer::pem_file_iter(ca).map_err(|e| bad_ca(&e))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad_ca(&e))?;
            roots.add(cert).map_err(|e| bad_ca(&e))?;
        }
        if roots.is_empty() {
            return Err(bad_ca(&"no certificate in the file"));
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A certificate the system store holds but rustls cannot use is skipped.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots);
    let mut config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("tls.cert_file", cert)(&e))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("tls.key_file", key)(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::ClientCertificate)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Dials one address; optionally wraps the stream in TLS for `server_name`.
#[derive(Clone)]
pub struct Dialer {
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub connect_timeout: Duration,
}

impl Dialer {
    pub fn new(
        addr: SocketAddr,
        tls: Option<(Arc<ClientConfig>, &str)>,
        connect_timeout: Duration,
    ) -> Result<Dialer, TlsError> {
        let tls = match tls {
            None => None,
            Some((config, name)) => {
                let name =
                    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName {
                        name: name.to_string(),
                    })?;
                Some((TlsConnector::from(config), name))
            }
        };
        Ok(Dialer {
            addr,
            tls,
            connect_timeout,
        })
    }

    async fn dial(self) -> io::Result<Stream> {
        let timeout = self.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {} timed out after {timeout:?}", self.addr),
                )
            })??;
        tcp.set_nodelay(true)?;
        match self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.dial().await.map(TokioIo::new) })
    }
}

/// A connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(t) => {
                if t.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}
