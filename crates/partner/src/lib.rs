//! The Partner Directory at request time: an in-memory, cheaply updated copy of the directory
//! ([`directory`]), the extractors that read the partner named in a message ([`extract`]) and the
//! partner authorization check.

pub mod check;
pub mod directory;
pub mod extract;
pub mod packed;

pub use directory::{Directory, DirectoryBuilder};
