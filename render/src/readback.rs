//! Copying a rendered texture back to the CPU. GPUs want each copied row padded to
//! `COPY_BYTES_PER_ROW_ALIGNMENT`; this is the one place that knows, and it hands back tight rows.

use wgpu::{COPY_BYTES_PER_ROW_ALIGNMENT, Device, Queue, Texture};

const BYTES_PER_PIXEL: u32 = 4;

/// Bytes per row of a `width`-pixel RGBA row once padded for a texture-to-buffer copy.
pub(crate) fn padded_bytes_per_row(width: u32) -> u32 {
    (width * BYTES_PER_PIXEL).div_ceil(COPY_BYTES_PER_ROW_ALIGNMENT) * COPY_BYTES_PER_ROW_ALIGNMENT
}

/// A staging buffer sized for one texture, reused frame after frame.
pub(crate) struct Readback {
    buffer: wgpu::Buffer,
    width: u32,
    height: u32,
}

impl Readback {
    pub(crate) fn new(device: &Device, width: u32, height: u32) -> Self {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: u64::from(padded_bytes_per_row(width)) * u64::from(height),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            width,
            height,
        }
    }

    /// Records the copy of `texture` into the staging buffer.
    pub(crate) fn encode_copy(&self, encoder: &mut wgpu::CommandEncoder, texture: &Texture) {
        encoder.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &self.buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded_bytes_per_row(self.width)),
                    rows_per_image: Some(self.height),
                },
            },
            texture.size(),
        );
    }

    /// Waits for the GPU, then returns the pixels as tight RGBA rows, or what the GPU said went
    /// wrong. Blocks: call it from a render thread, never from async code.
    pub(crate) fn read(&self, device: &Device, _queue: &Queue) -> Result<Vec<u8>, String> {
        map_read(device, &self.buffer)?;

        let row = (self.width * BYTES_PER_PIXEL) as usize;
        let padded = padded_bytes_per_row(self.width) as usize;
        let mut pixels = Vec::with_capacity(row * self.height as usize);
        {
            let view = self
                .buffer
                .get_mapped_range(..)
                .map_err(|e| e.to_string())?;
            for line in view.chunks_exact(padded) {
                pixels.extend_from_slice(&line[..row]);
            }
        }
        self.buffer.unmap();
        Ok(pixels)
    }
}

/// Waits for the GPU to finish with `buffer` and maps it for reading.
fn map_read(device: &Device, buffer: &wgpu::Buffer) -> Result<(), String> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    buffer.map_async(wgpu::MapMode::Read, .., move |result| {
        // The receiver outlives the poll below; a failed send cannot happen.
        let _ = sender.send(result);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| e.to_string())?;
    receiver
        .recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Waits for the GPU, then returns a mapped-readable buffer's bytes. Blocks, like
/// [`Readback::read`].
pub(crate) fn read_buffer(device: &Device, buffer: &wgpu::Buffer) -> Result<Vec<u8>, String> {
    map_read(device, buffer)?;
    let data = buffer
        .get_mapped_range(..)
        .map_err(|e| e.to_string())?
        .to_vec();
    buffer.unmap();
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_the_copy_alignment() {
        assert_eq!(padded_bytes_per_row(64), 256);
        assert_eq!(padded_bytes_per_row(65), 512);
        assert_eq!(padded_bytes_per_row(1280), 5120);
        assert_eq!(padded_bytes_per_row(390), 1792);
    }
}
