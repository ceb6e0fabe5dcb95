//! A space's member socket, both ways.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_core::space_protocol::{SpaceClientMessage, SpaceServerMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = SpaceClientMessage::parse(text) {
        assert_eq!(
            SpaceClientMessage::parse(&message.to_json()).ok(),
            Some(message)
        );
    }
    if let Ok(message) = SpaceServerMessage::parse(text) {
        assert_eq!(
            SpaceServerMessage::parse(&message.to_json()).ok(),
            Some(message)
        );
    }
});
