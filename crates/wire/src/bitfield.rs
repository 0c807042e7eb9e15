//! Which pieces a peer has: the checked form of a `bitfield` message.

use metainfo::PieceIndex;

use crate::WireError;

/// A set of pieces of one torrent, stored as BEP 3 sends it: "The first byte of the bitfield corresponds
/// to indices 0 - 7 from high bit to low bit, respectively. The next one 8-15, etc. Spare bits at the end
/// are set to zero."
///
/// Every value keeps the spare bits zero, so [`Bitfield::as_bytes`] is always a valid `bitfield` payload.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    num_pieces: u32,
}

/// Bytes in a bitfield for `num_pieces` pieces.
pub fn bitfield_len(num_pieces: u32) -> usize {
    (num_pieces as usize).div_ceil(8)
}

impl Bitfield {
    /// No piece set.
    pub fn new(num_pieces: u32) -> Self {
        Bitfield {
            bytes: vec![0; bitfield_len(num_pieces)],
            num_pieces,
        }
    }

    /// Every piece set (what `have all` means).
    pub fn full(num_pieces: u32) -> Self {
        let mut b = Bitfield {
            bytes: vec![0xff; bitfield_len(num_pieces)],
            num_pieces,
        };
        b.clear_spare_bits();
        b
    }

    /// Check a received `bitfield` payload against the torrent's piece count.
    ///
    /// BEP 3: "Clients should drop the connection if they receive bitfields that are not of the correct
    /// size, or if the bitfield has any of the spare bits set." Both are errors here.
    pub fn from_bytes(bytes: &[u8], num_pieces: u32) -> Result<Self, WireError> {
        let expected = bitfield_len(num_pieces);
        if bytes.len() != expected {
            return Err(WireError::BitfieldLength {
                len: bytes.len(),
                expected,
                num_pieces,
            });
        }
        let b = Bitfield {
            bytes: bytes.to_vec(),
            num_pieces,
        };
        if let Some(&last) = b.bytes.last() {
            if last & !b.last_byte_mask() != 0 {
                return Err(WireError::BitfieldSpareBits {
                    num_pieces,
                    last_byte: last,
                });
            }
        }
        Ok(b)
    }

    /// Pieces in the torrent (bits that count).
    pub fn len(&self) -> u32 {
        self.num_pieces
    }

    /// True if the torrent has no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.num_pieces == 0
    }

    /// True if `index` is set; false for an index past the end.
    pub fn get(&self, index: PieceIndex) -> bool {
        let i = index.0 as usize;
        index.0 < self.num_pieces && self.bytes.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// Set or clear `index`; an index past the end is an error and changes nothing.
    pub fn set(&mut self, index: PieceIndex, have: bool) -> Result<(), WireError> {
        let i = index.0 as usize;
        let byte = self
            .bytes
            .get_mut(i / 8)
            .filter(|_| index.0 < self.num_pieces)
            .ok_or(WireError::PieceOutOfRange {
                index: index.0,
                num_pieces: self.num_pieces,
            })?;
        let bit = 0x80 >> (i % 8);
        if have {
            *byte |= bit;
        } else {
            *byte &= !bit;
        }
        Ok(())
    }

    /// How many pieces are set.
    pub fn count(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }

    /// True if every piece is set.
    pub fn is_full(&self) -> bool {
        self.count() == self.num_pieces
    }

    /// The set pieces, in ascending order.
    pub fn iter_set(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.bytes.iter().enumerate().flat_map(|(i, &b)| {
            (0..8u32)
                .filter(move |bit| b & (0x80 >> bit) != 0)
                .map(move |bit| PieceIndex(i as u32 * 8 + bit))
        })
    }

    /// The payload of a `bitfield` message for this set.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bits of the last byte that belong to pieces.
    fn last_byte_mask(&self) -> u8 {
        match self.num_pieces % 8 {
            0 => 0xff,
            r => !(0xffu8 >> r),
        }
    }

    fn clear_spare_bits(&mut self) {
        let mask = self.last_byte_mask();
        if let Some(last) = self.bytes.last_mut() {
            *last &= mask;
        }
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{} pieces)", self.count(), self.num_pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_bit_of_first_byte_is_piece_zero() {
        let b = Bitfield::from_bytes(&[0b1000_0001, 0b0100_0000], 10).unwrap();
        assert!(b.get(PieceIndex(0)) && b.get(PieceIndex(7)) && b.get(PieceIndex(9)));
        assert!(!b.get(PieceIndex(1)) && !b.get(PieceIndex(8)) && !b.get(PieceIndex(10)));
        assert_eq!(b.count(), 3);
        assert_eq!(
            b.iter_set().collect::<Vec<_>>(),
            vec![PieceIndex(0), PieceIndex(7), PieceIndex(9)]
        );
        assert_eq!(format!("{b:?}"), "Bitfield(3/10 pieces)");
    }

    #[test]
    fn wrong_sizes_and_spare_bits_are_refused() {
        // BEP 3: "Clients should drop the connection if they receive bitfields that are not of the correct
        // size, or if the bitfield has any of the spare bits set."
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(WireError::BitfieldLength {
                len: 1,
                expected: 2,
                num_pieces: 10
            })
        );
        assert!(Bitfield::from_bytes(&[0xff, 0xc0, 0], 10).is_err());
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(WireError::BitfieldSpareBits {
                num_pieces: 10,
                last_byte: 0xe0
            })
        );
        assert!(Bitfield::from_bytes(&[0xff, 0xc0], 10).unwrap().is_full());
        assert!(Bitfield::from_bytes(&[0xff], 8).unwrap().is_full());
        assert!(Bitfield::from_bytes(&[], 0).unwrap().is_empty());
        assert!(Bitfield::from_bytes(&[0x01], 7).is_err());
    }

    #[test]
    fn set_get_full_and_out_of_range() {
        let mut b = Bitfield::new(62);
        assert_eq!(b.as_bytes().len(), 8);
        b.set(PieceIndex(61), true).unwrap();
        b.set(PieceIndex(3), true).unwrap();
        b.set(PieceIndex(3), false).unwrap();
        assert_eq!(b.iter_set().collect::<Vec<_>>(), vec![PieceIndex(61)]);
        assert_eq!(
            b.set(PieceIndex(62), true),
            Err(WireError::PieceOutOfRange {
                index: 62,
                num_pieces: 62
            })
        );
        assert_eq!(b.count(), 1);
        let full = Bitfield::full(62);
        assert_eq!(full.as_bytes(), &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc]);
        assert!(full.is_full());
        assert_eq!(full.count(), 62);
        assert_eq!(Bitfield::full(0).as_bytes(), &[] as &[u8]);
    }
}
