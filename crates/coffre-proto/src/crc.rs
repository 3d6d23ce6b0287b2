//! CRC-16 as the ATECC608 computes it.
//!
//! Polynomial 0x8005, initial value 0, input bits taken LSB first, no output
//! reflection, no final XOR; transmitted low byte first. This is CryptoAuthLib's
//! `atCRC()`; in catalogue terms: poly 0x8005, init 0, refin=true,
//! refout=false, xorout=0.

/// Table for the byte-at-a-time form: entry `i` is the CRC register
/// contribution of the 8 data bits `i` taken most significant first.
const TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[i] = crc;
        i += 1;
    }
    t
};

/// CRC-16 of `data` as the chip computes it.
///
/// The chip consumes each byte's bits least significant first into a
/// left-shifting register; that equals the classic most-significant-first
/// table algorithm fed with bit-reversed bytes.
pub const fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut i = 0;
    while i < data.len() {
        let b = data[i].reverse_bits();
        crc = (crc << 8) ^ TABLE[((crc >> 8) as u8 ^ b) as usize];
        i += 1;
    }
    crc
}

/// The bit-by-bit form, exactly as CryptoAuthLib's `atCRC()` is written;
/// kept to check the table form against.
pub const fn crc16_bitwise(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    let mut i = 0;
    while i < data.len() {
        let byte = data[i];
        let mut bit = 0;
        while bit < 8 {
            let d = (byte >> bit) & 1;
            let c = (crc >> 15) as u8 & 1;
            crc <<= 1;
            if d != c {
                crc ^= 0x8005;
            }
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// CRC-16 of `data` in wire order: `[low, high]`.
pub const fn crc16_bytes(data: &[u8]) -> [u8; 2] {
    let c = crc16(data);
    [(c & 0xFF) as u8, (c >> 8) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_form_equals_the_bitwise_form() {
        let mut data = [0u8; 300];
        let mut x: u32 = 12345;
        for b in data.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        for n in 0..data.len() {
            assert_eq!(crc16(&data[..n]), crc16_bitwise(&data[..n]), "length {n}");
        }
        for b in 0..=255u8 {
            assert_eq!(crc16(&[b]), crc16_bitwise(&[b]));
        }
    }

    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0xBCDD);
        assert_eq!(crc16(&[]), 0);
    }

    #[test]
    fn recorded_vectors() {
        let cases: &[(&[u8], [u8; 2])] = &[
            (&[0x07, 0x30, 0x00, 0x00, 0x00], [0x03, 0x5D]),
            (&[0x04, 0x11], [0x33, 0x43]),
            (&[0x07, 0x1B, 0x00, 0x00, 0x00], [0x24, 0xCD]),
            (&[0x07, 0x02, 0x80, 0x00, 0x00], [0x09, 0xAD]),
            (&[0x07, 0x40, 0x00, 0x00, 0x00], [0x00, 0x05]),
            (&[0x07, 0x17, 0x80, 0x00, 0x00], [0x39, 0x8D]),
            (&[0x07, 0x17, 0x81, 0x00, 0x00], [0x3A, 0x07]),
            (&[0x07, 0x02, 0x00, 0x15, 0x00], [0x17, 0x5D]),
            (&[0x04, 0x00], [0x03, 0x40]),
            (&[0x04, 0xFF], [0x01, 0x42]),
            (&[0x04, 0xEE], [0x31, 0x41]),
        ];
        for (input, want) in cases {
            assert_eq!(crc16_bytes(input), *want, "input {input:02X?}");
        }
    }

    #[test]
    fn real_device_read_response() {
        // A 35-byte Read-config response captured from an ATECC608A
        // (MicrochipTech/cryptoauthlib issue #51).
        let rsp: [u8; 35] = [
            0x23, 0x01, 0x23, 0x88, 0x05, 0x00, 0x00, 0x60, 0x02, 0x81, 0x97, 0xBA, 0xF6, 0xEE,
            0x01, 0x5D, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x83, 0x20, 0x87, 0x20, 0x8F, 0x20, 0xC4,
            0x8F, 0x8F, 0x8F, 0x8F, 0x8F, 0x90, 0xA8,
        ];
        assert_eq!(crc16_bytes(&rsp[..33]), [0x90, 0xA8]);
    }
}
