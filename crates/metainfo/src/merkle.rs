//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, padded with zero leaves to a power of two.
//!
//! BEP 52: "The remaining leaf hashes beyond the end of the file required to construct upper layers of the
//! merkle tree are set to zero." A file no longer than one piece has its root over `next_pow2(blocks)`
//! leaves; a longer file has a piece layer whose nodes each cover `piece length / 16 KiB` leaves.

use sha2::{Digest, Sha256};

/// The v2 block size: leaves of the merkle tree hash this many bytes.
pub const BLOCK_SIZE: u64 = 16 * 1024;

/// A SHA-256 hash.
pub type Hash256 = [u8; 32];

/// The hash of two children.
pub fn parent(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of a perfect subtree of `leaves` zero leaves (`leaves` a power of two).
pub fn zero_subtree(leaves: u64) -> Hash256 {
    let mut h = [0u8; 32];
    let mut n = 1;
    while n < leaves {
        h = parent(&h, &h);
        n *= 2;
    }
    h
}

/// Merkle root of `layer`, padded on the right with `pad` nodes up to `width` (a power of two, at least
/// `layer.len()`). Returns the pad itself for an empty layer.
pub fn root_padded(layer: &[Hash256], width: usize, pad: Hash256) -> Hash256 {
    let width = width.max(layer.len()).max(1).next_power_of_two();
    let mut level: Vec<Hash256> = layer.to_vec();
    let mut pad = pad;
    let mut w = width;
    while w > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => next.push(parent(l, r)),
                [l] => next.push(parent(l, &pad)),
                _ => {}
            }
        }
        pad = parent(&pad, &pad);
        level = next;
        w /= 2;
    }
    level.first().copied().unwrap_or(pad)
}

/// Incremental hasher for one merkle subtree (a piece, or a whole small file): feed the data in order,
/// then [`SubtreeHasher::finish`] pads with zero leaves to `leaves` and returns the root.
#[derive(Debug, Clone)]
pub struct SubtreeHasher {
    leaves: Vec<Hash256>,
    block: Sha256,
    in_block: u64,
    width: u64,
}

impl SubtreeHasher {
    /// A hasher for a subtree `width` leaves wide (a power of two).
    pub fn new(width: u64) -> Self {
        SubtreeHasher {
            leaves: Vec::new(),
            block: Sha256::new(),
            in_block: 0,
            width: width.max(1),
        }
    }
    /// Feed data.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOCK_SIZE - self.in_block) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.update(now);
            self.in_block += now.len() as u64;
            data = rest;
            if self.in_block == BLOCK_SIZE {
                self.leaves
                    .push(std::mem::take(&mut self.block).finalize().into());
                self.in_block = 0;
            }
        }
    }
    /// The subtree's root.
    pub fn finish(mut self) -> Hash256 {
        if self.in_block > 0 {
            self.leaves.push(self.block.finalize().into());
        }
        root_padded(&self.leaves, self.width as usize, [0u8; 32])
    }
}

/// Leaves needed for a file's tree: `next_pow2(ceil(len / 16 KiB))`, at least 1.
pub fn file_leaves(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE).max(1).next_power_of_two()
}

/// The pieces root of a file from its piece layer (for files longer than one piece).
pub fn root_from_piece_layer(layer: &[Hash256], piece_length: u64) -> Hash256 {
    let pad = zero_subtree(piece_length / BLOCK_SIZE);
    root_padded(layer, layer.len().next_power_of_two(), pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(data: &[u8]) -> Hash256 {
        Sha256::digest(data).into()
    }

    #[test]
    fn one_block_file_root_is_its_leaf_hash() {
        let data = vec![7u8; 1000];
        let mut h = SubtreeHasher::new(file_leaves(1000));
        h.update(&data);
        assert_eq!(h.finish(), leaf(&data));
    }

    #[test]
    fn three_blocks_pad_with_a_zero_leaf() {
        let data: Vec<u8> = (0..(2 * BLOCK_SIZE + 5)).map(|i| i as u8).collect();
        let mut h = SubtreeHasher::new(file_leaves(data.len() as u64));
        for chunk in data.chunks(777) {
            h.update(chunk);
        }
        let l: Vec<Hash256> = data.chunks(BLOCK_SIZE as usize).map(leaf).collect();
        let expect = parent(&parent(&l[0], &l[1]), &parent(&l[2], &[0; 32]));
        assert_eq!(h.finish(), expect);
    }

    #[test]
    fn piece_layer_root_matches_flat_tree() {
        // 5 pieces of 2 blocks; last piece has 1 block. Root from pieces == root over all leaves padded.
        let piece = 2 * BLOCK_SIZE;
        let data: Vec<u8> = (0..(4 * piece + 100)).map(|i| (i * 7) as u8).collect();
        let pieces: Vec<Hash256> = data
            .chunks(piece as usize)
            .map(|p| {
                let mut h = SubtreeHasher::new(2);
                h.update(p);
                h.finish()
            })
            .collect();
        let mut whole = SubtreeHasher::new(file_leaves(data.len() as u64));
        whole.update(&data);
        assert_eq!(root_from_piece_layer(&pieces, piece), whole.finish());
    }
}
