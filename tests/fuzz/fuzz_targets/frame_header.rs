//! A render connection's binary frame: the header a device reads before the image.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_core::protocol::FrameHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, image)) = FrameHeader::decode(data) {
        assert_eq!(header.encode_with(image), data);
    }
});
