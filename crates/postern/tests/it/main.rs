//! End-to-end tests: the real `postern` binary, started on 127.0.0.1 with a temporary data
//! directory, driven with a real HTTP client and the real CLI.

#![allow(missing_docs)]

mod admin_api;
mod connectivity;
mod expiry;
mod fixture;
mod fuzz_replay;
mod lifecycle;
mod limits;
mod lockout;
mod mpl;
mod mtls;
mod multinode;
mod oauth;
mod outage;
mod partner;
mod pg_tls;
mod receivers;
mod sender;
mod tls;
