//! The models people look at: the samples Parallax builds and the files people upload, kept on
//! disk, each converted once (by a child process) into the mesh render hosts load and a
//! thumbnail from our own renderer.

pub mod conversions;
pub mod convert;
pub mod files;
pub mod models;
pub mod parts;
pub mod settings;
