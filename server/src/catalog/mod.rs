//! The models people look at: the samples Parallax builds and the files people upload, kept on
//! disk, imported into meshes on first use, each with a thumbnail from our own renderer.

pub mod convert;
pub mod files;
pub mod models;
