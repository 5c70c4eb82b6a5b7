//! `tcp-peer`: the two ends of a TCP connection for the end-to-end tests.
//!
//! - `tcp-peer serve ADDR`: an echo server; prints `LISTENING <addr>` once bound.
//! - `tcp-peer connect ADDR BYTES HOLD_SECS`: sends BYTES bytes, reads the echo, prints
//!   `CONNECTED <local> <remote>`, keeps the connection open HOLD_SECS, then closes.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::ExitCode,
    thread,
    time::Duration,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", addr] => serve(addr),
        ["connect", addr, bytes, hold] => match (bytes.parse(), hold.parse()) {
            (Ok(bytes), Ok(hold)) => connect(addr, bytes, hold),
            _ => Err("BYTES and HOLD_SECS must be numbers".into()),
        },
        _ => Err("usage: tcp-peer serve ADDR | tcp-peer connect ADDR BYTES HOLD_SECS".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tcp-peer: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: &str) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("LISTENING {local}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn connect(addr: &str, bytes: usize, hold_secs: f64) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let payload = vec![b'x'; bytes];
    stream
        .write_all(&payload)
        .map_err(|e| format!("send: {e}"))?;
    let mut echoed = vec![0u8; bytes];
    stream
        .read_exact(&mut echoed)
        .map_err(|e| format!("receive: {e}"))?;
    let local = stream.local_addr().map_err(|e| e.to_string())?;
    let remote = stream.peer_addr().map_err(|e| e.to_string())?;
    println!("CONNECTED {local} {remote}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    thread::sleep(Duration::from_secs_f64(hold_secs));
    Ok(())
}
