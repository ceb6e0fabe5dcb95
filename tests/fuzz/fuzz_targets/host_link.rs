//! The link between a render host and its coordinator, both ways.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_core::host::{HostCommand, HostReport};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(report) = HostReport::parse(text) {
        assert_eq!(HostReport::parse(&report.to_json()).ok(), Some(report));
    }
    if let Ok(command) = HostCommand::parse(text) {
        assert_eq!(HostCommand::parse(&command.to_json()).ok(), Some(command));
    }
});
