// Each test crate uses a different part of these helpers.
#![allow(dead_code)]

pub mod chromium;
pub mod node;
