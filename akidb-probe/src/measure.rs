//! One timed request: DNS, TCP connect, time to first byte (response head), total (body read).
//!
//! Every request opens its own connection, so each sample includes DNS and connect as a first visit from
//! that place would; the phases are cumulative times from the request's start.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::Endpoint;

/// An endpoint resolved into what a request needs.
pub struct Target {
    host: String,
    port: u16,
    method: Method,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Target {
    pub fn parse(endpoint: &Endpoint) -> Result<Target> {
        let uri: Uri = endpoint
            .url
            .parse()
            .with_context(|| format!("bad URL {:?}", endpoint.url))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!(
                "{}: https is not supported: this probe does not time TLS handshakes; probe the \
                 http origin or a TLS-terminating sidecar",
                endpoint.url
            ),
            _ => bail!("{}: URL must start with http://", endpoint.url),
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("{}: URL has no host", endpoint.url))?;
        let method = Method::from_bytes(endpoint.method.as_bytes())
            .with_context(|| format!("bad method {:?}", endpoint.method))?;
        Ok(Target {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: uri.port_u16().unwrap_or(80),
            method,
            path_and_query: uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
            headers: endpoint
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: Bytes::from(endpoint.body.clone().unwrap_or_default()),
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Milliseconds from the request's start to the end of each phase.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub dns: f64,
    pub connect: f64,
    pub ttfb: f64,
    pub total: f64,
}

impl Sample {
    pub fn get(&self, phase: crate::config::Phase) -> f64 {
        use crate::config::Phase::*;
        match phase {
            Dns => self.dns,
            Connect => self.connect,
            Ttfb => self.ttfb,
            Total => self.total,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends one request on a fresh connection; a non-2xx status or a timeout is an error.
pub async fn request_once(target: &Target, timeout: Duration) -> Result<Sample> {
    tokio::time::timeout(timeout, request_inner(target))
        .await
        .map_err(|_| anyhow!("timed out after {} ms", timeout.as_millis()))?
}

async fn request_inner(target: &Target) -> Result<Sample> {
    let start = Instant::now();
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("resolving {}", target.host))?
        .next()
        .ok_or_else(|| anyhow!("{} resolved to no address", target.host))?;
    let dns = start.elapsed();
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let connect = start.elapsed();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task drives the socket; it ends when the sender is dropped after this request.
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(target.method.clone())
        .uri(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.host_header());
    for (name, value) in &target.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(target.body.clone()))
        .context("building the request")?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let ttfb = start.elapsed();
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the body")?
        .to_bytes();
    let total = start.elapsed();
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    Ok(Sample {
        dns: ms(dns),
        connect: ms(connect),
        ttfb: ms(ttfb),
        total: ms(total),
    })
}
