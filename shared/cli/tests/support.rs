//! What the process tests share: `migrations serve` as a child process, ready
//! once it printed its address, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, from the line the process prints first.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// SIGKILL: no graceful shutdown, nothing flushed that was not committed.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `migrations serve --port 0`, to be given its other arguments and variables.
pub fn serve_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migrations"));
    command.args(["serve", "--port", "0"]);
    command
}

/// Start `command` and wait for its `listening on …` line.
pub fn spawn(mut command: Command) -> Server {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn migrations serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read address line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server { child, base }
}
