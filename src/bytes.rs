//! Sixteen bytes looked at at once: which of them are a given byte, or in
//! a range. SSE2 is in every x86-64 processor (the target's baseline), so
//! this module exists there only; its callers (the manifest scanner,
//! path patterns) keep a plain loop for other targets. One place for the
//! `unsafe` their hot loops need.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8,
    _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_sub_epi8,
};

/// Sixteen bytes, loaded.
#[derive(Clone, Copy)]
pub struct Block(__m128i);

/// Which of a [`Block`]'s bytes something holds for.
#[derive(Clone, Copy)]
pub struct Mask(__m128i);

// SAFETY (every `unsafe` below): SSE2 intrinsics, which every x86-64
// processor has; the one load reads exactly the 16 bytes it is given.
impl Block {
    /// `bytes`, in one register.
    #[inline(always)]
    pub fn load(bytes: &[u8; 16]) -> Block {
        Block(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
    }

    /// Each byte with bit 5 set: a letter of either case as lowercase.
    #[inline(always)]
    pub fn lowercase(self) -> Block {
        Block(unsafe { _mm_or_si128(self.0, _mm_set1_epi8(0x20)) })
    }

    /// A bit for each byte that is not ASCII (its top bit).
    #[inline(always)]
    pub fn non_ascii(self) -> u32 {
        (unsafe { _mm_movemask_epi8(self.0) }) as u32
    }

    /// The bytes equal to `byte`.
    #[inline(always)]
    pub fn eq(self, byte: u8) -> Mask {
        Mask(unsafe { _mm_cmpeq_epi8(self.0, _mm_set1_epi8(byte as i8)) })
    }

    /// The bytes in `first..=first + span`, unsigned: less `first`, a
    /// byte in it is at most `span`, so its own minimum with `span`.
    #[inline(always)]
    pub fn within(self, first: u8, span: u8) -> Mask {
        unsafe {
            let from = _mm_sub_epi8(self.0, _mm_set1_epi8(first as i8));
            Mask(_mm_cmpeq_epi8(
                _mm_min_epu8(from, _mm_set1_epi8(span as i8)),
                from,
            ))
        }
    }
}

impl Mask {
    /// The bytes of this mask but not of `other`.
    #[inline(always)]
    pub fn except(self, other: Mask) -> Mask {
        Mask(unsafe { _mm_andnot_si128(other.0, self.0) })
    }

    /// A bit for each byte, the first lowest.
    #[inline(always)]
    pub fn bits(self) -> u32 {
        (unsafe { _mm_movemask_epi8(self.0) }) as u32
    }
}

impl std::ops::BitOr for Mask {
    type Output = Mask;

    #[inline(always)]
    fn bitor(self, other: Mask) -> Mask {
        Mask(unsafe { _mm_or_si128(self.0, other.0) })
    }
}

impl std::ops::BitAnd for Mask {
    type Output = Mask;

    #[inline(always)]
    fn bitand(self, other: Mask) -> Mask {
        Mask(unsafe { _mm_and_si128(self.0, other.0) })
    }
}
