//! What the Lambdas' init-time warm-up (`WARM_UP`, `api::aws::warm_up`) buys:
//! the latency of the first and second DynamoDB request in a fresh process,
//! with and without the warm-up, over plain HTTP and over TLS.
//!
//! Needs DynamoDB Local (and python3 + openssl for `--tls`):
//!
//! ```sh
//! eval "$(tests/services/start.sh)"
//! cargo run --release -p e2e --example first_request -- --runs 20 --tls
//! ```
//!
//! Each run is a new process (this binary in `child` mode), as a cold start is: it
//! loads the SDK configuration, builds the client, warms up or not (that is its
//! "init"), then times two `GetItem`s, the first of which is what an API request
//! arriving right after the cold start would pay. With `--tls` the child talks to
//! DynamoDB Local through `tests/services/tls_proxy.py` (a TLS-terminating proxy on
//! loopback, its certificate signed by a throwaway CA the child trusts through
//! `SSL_CERT_FILE`), so the handshake's CPU cost is in the figures; the network
//! round trips of a real region are not (loopback), nor is the Lambda's smaller
//! CPU share, which scales the CPU part up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use api::Config;
use aws_sdk_dynamodb::types::AttributeValue;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child().await;
    }
    let mut runs = 20usize;
    let mut tls = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--runs" => runs = it.next().ok_or("--runs needs a value")?.parse()?,
            "--tls" => tls = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .map_err(|_| "set AWS_ENDPOINT_URL_DYNAMODB: eval \"$(tests/services/start.sh)\"")?;
    let sdk = api::aws::sdk_config().await;
    let tables =
        store::testing::create_fresh_tables(&aws_sdk_dynamodb::Client::new(&sdk), "first-request")
            .await?;

    let mut modes = vec![Mode {
        name: "http",
        endpoint: endpoint.clone(),
        ca_file: None,
    }];
    let mut proxy = None;
    if tls {
        let dir = std::env::temp_dir().join(&tables.main);
        std::fs::create_dir_all(&dir)?;
        let ca_file = make_certificates(&dir)?;
        let (child, port) = start_proxy(&dir, &endpoint)?;
        proxy = Some(child);
        modes.push(Mode {
            name: "tls",
            endpoint: format!("https://localhost:{port}"),
            ca_file: Some(ca_file),
        });
    }

    println!(
        "{runs} fresh processes per row; milliseconds, median (p90)\n\n\
         {:<6} {:<8} {:>18} {:>18} {:>18} {:>18}",
        "wire", "warm-up", "init", "first request", "second request", "init + first"
    );
    for mode in &modes {
        for warm_up in [false, true] {
            let mut samples = Vec::with_capacity(runs);
            for _ in 0..runs {
                samples.push(run_child(mode, warm_up, &tables.main)?);
            }
            let column = |pick: fn(&Sample) -> f64| summary(samples.iter().map(pick).collect());
            println!(
                "{:<6} {:<8} {:>18} {:>18} {:>18} {:>18}",
                mode.name,
                if warm_up { "yes" } else { "no" },
                column(|s| s.init),
                column(|s| s.first),
                column(|s| s.second),
                column(|s| s.init + s.first),
            );
        }
    }
    if let Some(mut proxy) = proxy {
        let _ = proxy.kill();
        let _ = proxy.wait();
    }
    Ok(())
}

struct Mode {
    name: &'static str,
    endpoint: String,
    ca_file: Option<PathBuf>,
}

struct Sample {
    init: f64,
    first: f64,
    second: f64,
}

fn run_child(mode: &Mode, warm_up: bool, table: &str) -> Result<Sample, Error> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("child")
        .env("AWS_ENDPOINT_URL_DYNAMODB", &mode.endpoint)
        .env("MIGRATIONS_TABLE", table)
        .env("WARM_UP", if warm_up { "true" } else { "false" })
        .stderr(Stdio::inherit());
    if let Some(ca_file) = &mode.ca_file {
        command.env("SSL_CERT_FILE", ca_file);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!("child failed: {}", output.status).into());
    }
    let text = String::from_utf8(output.stdout)?;
    let numbers: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match numbers[..] {
        [init, first, second] => Ok(Sample {
            init,
            first,
            second,
        }),
        _ => Err(format!("unexpected child output {text:?}").into()),
    }
}

/// The cold start as `api::aws::lambda_state` does it, then two requests.
async fn child() -> Result<(), Error> {
    let started = Instant::now();
    let config = Config::from_env()?;
    let sdk = api::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    if config.warm_up {
        api::aws::warm_up(&client, &config.main_table, None).await;
    }
    let init = started.elapsed();
    let read = || {
        client
            .get_item()
            .table_name(&config.main_table)
            .key("pk", AttributeValue::S("tenant#t1#scenario#s1".into()))
            .key("sk", AttributeValue::S("head".into()))
            .send()
    };
    let started = Instant::now();
    read().await?;
    let first = started.elapsed();
    let started = Instant::now();
    read().await?;
    let second = started.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("{} {} {}", ms(init), ms(first), ms(second));
    Ok(())
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!("{:.2} ({:.2})", at(0.5), at(0.9))
}

/// A throwaway CA and a `localhost` certificate it signs; returns the CA's file.
fn make_certificates(dir: &Path) -> Result<PathBuf, Error> {
    let openssl = |args: &[&str]| -> Result<(), Error> {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("openssl {} failed", args.join(" ")).into())
        }
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=first-request CA",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ])?;
    Ok(dir.join("ca.pem"))
}

fn start_proxy(dir: &Path, endpoint: &str) -> Result<(Child, u16), Error> {
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/services/tls_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--cert")
        .arg(dir.join("server.pem"))
        .arg("--key")
        .arg(dir.join("server.key"))
        .arg("--upstream")
        .arg(&upstream)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("proxy stdout")?),
        &mut line,
    )?;
    let port = line.trim().parse()?;
    Ok((child, port))
}
