//! A test OTLP/HTTP receiver on loopback: keeps every POST body by signal and answers 200.
//!
//! The one receiver of the workspace's tests (traces, logs and metrics alike); the tests decode
//! the protobuf bodies with the OpenTelemetry proto types.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Every OTLP POST body, by path.
#[derive(Debug, Default)]
pub struct Received {
    /// `POST /v1/traces` bodies.
    pub traces: Vec<Vec<u8>>,
    /// `POST /v1/logs` bodies.
    pub logs: Vec<Vec<u8>>,
    /// `POST /v1/metrics` and any other bodies.
    pub metrics: Vec<Vec<u8>>,
}

/// Starts the receiver; returns its port and what it got.
pub fn receiver() -> (u16, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Received::default()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                let mut got = sink.lock().unwrap();
                if request_line.starts_with("POST /v1/traces") {
                    got.traces.push(body);
                } else if request_line.starts_with("POST /v1/logs") {
                    got.logs.push(body);
                } else {
                    got.metrics.push(body);
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}
