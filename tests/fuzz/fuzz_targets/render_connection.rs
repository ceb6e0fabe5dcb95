//! The render connection's JSON, both ways: what a device sends a host and what a host answers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_core::device::{DeviceMessage, HostMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = DeviceMessage::parse(text) {
        // What was read is what is written, so a host relaying it says the same; or else it held
        // a number JSON cannot write back (one too large for f32 reads as infinity), and the
        // host's checks refuse it.
        if DeviceMessage::parse(&message.to_json()).ok().as_ref() != Some(&message) {
            assert!(
                message.problem(u32::MAX).is_some(),
                "{message:?} neither round-trips nor is refused"
            );
        }
    }
    if let Ok(message) = HostMessage::parse(text) {
        assert_eq!(HostMessage::parse(&message.to_json()).ok(), Some(message));
    }
});
