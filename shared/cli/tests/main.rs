//! The `migrations` binary's integration tests as one test binary: each module
//! runs the real binary as a process (serve, health, init, plan, slow
//! clients, kill -9 mid-deploy).

mod events_kill;
mod health;
mod init;
mod kill_deploy;
mod plan;
mod serve;
mod slow_clients;
mod support;
