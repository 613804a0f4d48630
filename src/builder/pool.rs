//! Compact storage for a Builder: an array kept in fixed chunks (growing it
//! never copies what it holds, nor holds twice the memory while it does),
//! and the operand pool, which keeps each operand in 12 bytes where an
//! [`Operand`] takes 40.
//!
//! The pool hands out operands by value (unpacked into the caller's
//! buffer); the slices the Builder's node views borrow come from an
//! unpacked copy built on the first view and kept in step afterwards, so
//! that code which never looks at its nodes never pays for it.

use crate::code::Label;
use crate::error::{Error, Result};
use crate::x86::{Mem, MemBase, Operand, Reg, RegKind};
use std::cell::OnceCell;

/// Elements per chunk (as a power of two), past the first chunk.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Capacity of the first chunk when it is first needed: room for a small
/// function (the first chunk grows as a `Vec` up to a full chunk).
const FIRST_CHUNK: usize = 64;

/// A growable array of `Copy` elements stored in chunks of [`CHUNK`].
#[derive(Debug)]
pub(super) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T: Copy> Chunked<T> {
    pub(super) const fn new() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no memory is held yet.
    pub(super) fn is_unallocated(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Room for `more` elements without regrowing, within the first chunk
    /// (later chunks are allocated whole).
    pub(super) fn reserve(&mut self, more: usize) {
        if self.len >= CHUNK {
            return;
        }
        let want = (self.len + more).min(CHUNK);
        match self.chunks.first_mut() {
            Some(first) => first.reserve(want - first.len()),
            None => self.chunks.push(Vec::with_capacity(want)),
        }
    }

    /// Appends `value`; returns its index.
    #[inline(always)]
    pub(super) fn push(&mut self, value: T) -> usize {
        let i = self.len;
        match self.chunks.get_mut(i >> CHUNK_BITS) {
            Some(chunk) => chunk.push(value),
            None => self.push_in_new_chunk(value),
        }
        self.len = i + 1;
        i
    }

    #[cold]
    fn push_in_new_chunk(&mut self, value: T) {
        let capacity = if self.chunks.is_empty() {
            FIRST_CHUNK
        } else {
            CHUNK
        };
        let mut chunk = Vec::with_capacity(capacity);
        chunk.push(value);
        self.chunks.push(chunk);
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    #[inline]
    pub(super) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Empties the array, keeping its chunks for reuse.
    pub(super) fn clear(&mut self) {
        for chunk in &mut self.chunks {
            chunk.clear();
        }
        self.len = 0;
    }
}

impl<T: Copy> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T: Copy> std::ops::IndexMut<usize> for Chunked<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

/// `op` in its packed form.
#[inline(always)]
fn pack(whole: &mut Vec<Operand>, op: &Operand) -> Packed {
    match op {
        Operand::Reg(r) => Packed::Reg(*r),
        Operand::Imm(v) => Packed::Imm([*v as u32, (*v as u64 >> 32) as u32]),
        Operand::Label(l) => Packed::Label(*l),
        Operand::Mem(m) => match SmallMem::of(m) {
            Some(m) => Packed::Mem {
                disp: m.disp,
                size: m.size,
                base: m.base,
                index: m.index,
                scale: m.scale,
            },
            None => keep_whole(whole, *op),
        },
        Operand::None => keep_whole(whole, *op),
    }
}

/// Keeps `op` whole (its index fits in 32 bits: `push_all` checks).
fn keep_whole(whole: &mut Vec<Operand>, op: Operand) -> Packed {
    let index = whole.len() as u32;
    whole.push(op);
    Packed::Whole(index)
}

/// The most operands one instruction node holds.
pub(super) const MAX_OPERANDS: usize = 8;

/// A memory operand's base, in two bytes.
#[derive(Clone, Copy, Debug)]
enum SmallBase {
    None,
    Rip,
    Reg(RegKind, u8),
}

/// A memory operand without segment, broadcast, decorations, virtual
/// registers or a displacement beyond 32 bits: the common kind, in 12 bytes.
#[derive(Clone, Copy, Debug)]
struct SmallMem {
    disp: i32,
    size: u16,
    base: SmallBase,
    index: Option<(RegKind, u8)>,
    scale: u8,
}

impl SmallMem {
    /// `m` in the small form, when it has one that unpacks to `m` exactly:
    /// every field of `m` is checked (the `small_memory_covers_every_field`
    /// test compares each accepted operand with its unpacked copy).
    #[inline]
    fn of(m: &Mem) -> Option<SmallMem> {
        if m.segment().is_some()
            || m.is_broadcast()
            || m.is_abs64()
            || !m.decorators().is_empty()
            || (m.index().is_none() && m.scale() != 1)
        {
            return None;
        }
        let physical =
            |r: Reg| (!r.is_virtual() && r.decorators().is_empty()).then(|| (r.kind(), r.id()));
        let base = match m.base() {
            MemBase::None => SmallBase::None,
            MemBase::Rip => SmallBase::Rip,
            MemBase::Reg(r) => {
                let (kind, id) = physical(r)?;
                SmallBase::Reg(kind, id)
            }
            MemBase::Label(_) => return None,
        };
        let index = match m.index() {
            Some(r) => Some(physical(r)?),
            None => None,
        };
        Some(SmallMem {
            disp: i32::try_from(m.disp()).ok()?,
            size: m.size(),
            base,
            index,
            scale: m.scale(),
        })
    }

    fn unpack(&self) -> Option<Mem> {
        let base = match self.base {
            SmallBase::None => MemBase::None,
            SmallBase::Rip => MemBase::Rip,
            SmallBase::Reg(kind, id) => MemBase::Reg(Reg::new(kind, id)?),
        };
        let mut m = Mem::new(base, self.disp.into());
        if let Some((kind, id)) = self.index {
            m = m.with_index(Reg::new(kind, id)?, self.scale);
        }
        Some(m.with_size(self.size))
    }
}

/// An operand in 12 bytes (the fields of the memory form are those of
/// [`SmallMem`], flattened so that they share the word of the tag; the
/// immediate in two halves, so that nothing needs 8-byte alignment).
#[derive(Clone, Copy, Debug)]
enum Packed {
    Reg(Reg),
    Imm([u32; 2]),
    Label(Label),
    Mem {
        disp: i32,
        size: u16,
        base: SmallBase,
        index: Option<(RegKind, u8)>,
        scale: u8,
    },
    /// Index of the operand in the pool's list of operands kept whole.
    Whole(u32),
}

/// The operands of a Builder's instruction nodes, one after the other.
#[derive(Debug)]
pub(super) struct Operands {
    packed: Chunked<Packed>,
    /// Operands with no packed form (rare: segment overrides, broadcasts,
    /// virtual registers in addresses, label addresses, ...).
    whole: Vec<Operand>,
    /// Every operand unpacked, in pool order, once a view asked for them;
    /// kept in step with the pool from then on.
    view: OnceCell<Vec<Operand>>,
}

impl Operands {
    pub(super) const fn new() -> Self {
        Operands {
            packed: Chunked::new(),
            whole: Vec::new(),
            view: OnceCell::new(),
        }
    }

    pub(super) fn reserve(&mut self, more: usize) {
        self.packed.reserve(more);
    }

    pub(super) fn clear(&mut self) {
        self.packed.clear();
        self.whole.clear();
        if let Some(view) = self.view.get_mut() {
            view.clear();
        }
    }

    /// Appends `operands`; returns the index of the first.
    #[inline]
    pub(super) fn push_all(&mut self, operands: &[Operand]) -> Result<u32> {
        let full = || Error::InvalidArgument {
            message: "the Builder's operand pool is full".into(),
        };
        if operands.len() > MAX_OPERANDS {
            return Err(Error::InvalidArgument {
                message: format!(
                    "{} operands: a Builder instruction holds at most {MAX_OPERANDS}",
                    operands.len()
                ),
            });
        }
        let start = u32::try_from(self.packed.len()).map_err(|_| full())?;
        // Checked once here, so that packing cannot fail below.
        if u32::try_from(self.whole.len() + MAX_OPERANDS).is_err() {
            return Err(full());
        }
        for op in operands {
            let packed = pack(&mut self.whole, op);
            self.packed.push(packed);
        }
        if let Some(view) = self.view.get_mut() {
            view.extend_from_slice(operands);
        }
        Ok(start)
    }

    /// Operand `i` (`Operand::None` past the end).
    #[inline]
    pub(super) fn get(&self, i: usize) -> Operand {
        match self.packed.get(i) {
            Some(Packed::Reg(r)) => Operand::Reg(*r),
            Some(Packed::Imm([low, high])) => {
                Operand::Imm((u64::from(*high) << 32 | u64::from(*low)) as i64)
            }
            Some(Packed::Label(l)) => Operand::Label(*l),
            Some(&Packed::Mem {
                disp,
                size,
                base,
                index,
                scale,
            }) => {
                let small = SmallMem {
                    disp,
                    size,
                    base,
                    index,
                    scale,
                };
                small.unpack().map_or(Operand::None, Operand::Mem)
            }
            Some(Packed::Whole(w)) => self.whole.get(*w as usize).copied().unwrap_or_default(),
            None => Operand::None,
        }
    }

    /// Operands `start..start + len` unpacked into `buf`.
    pub(super) fn unpack<'o>(
        &self,
        start: u32,
        len: u32,
        buf: &'o mut [Operand; MAX_OPERANDS],
    ) -> &'o [Operand] {
        let len = (len as usize).min(MAX_OPERANDS);
        for (i, slot) in buf[..len].iter_mut().enumerate() {
            *slot = self.get(start as usize + i);
        }
        &buf[..len]
    }

    /// Every operand, unpacked (built on the first call).
    pub(super) fn view(&self) -> &[Operand] {
        self.view
            .get_or_init(|| (0..self.packed.len()).map(|i| self.get(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::{fs, k1, ptr, qword_ptr, r8, rax, rbx, rsp, xmm0, zmm1};

    #[test]
    fn packed_operands_are_small() {
        assert_eq!(std::mem::size_of::<Packed>(), 12);
    }

    /// Every kind of operand comes back as it went in, packed or kept whole.
    #[test]
    fn operands_round_trip() -> Result<()> {
        let virt = Reg::new_virtual(RegKind::Gp64, 3);
        let operands: Vec<Operand> = vec![
            Operand::Reg(rax.into()),
            Operand::Reg(zmm1.k(k1).z().into()),
            Operand::Reg(virt),
            Operand::Imm(i64::MIN),
            Operand::Imm(-2),
            Operand::Imm(0x1234_5678_9abc),
            Operand::Label(Label(7)),
            Operand::Mem(qword_ptr(rax + rbx * 4 + 0x40)),
            Operand::Mem(qword_ptr(rsp - 8)),
            Operand::Mem(qword_ptr(Mem::new(MemBase::Rip, -4))),
            Operand::Mem(qword_ptr(Mem::new(MemBase::Reg(r8.into()), 1i64 << 40))),
            Operand::Mem(qword_ptr(rax).with_segment(fs)),
            Operand::Mem(qword_ptr(rax).bcst()),
            Operand::Mem(ptr(Label(2))),
            Operand::Mem(qword_ptr(Mem::new(MemBase::Reg(virt), 8))),
            Operand::Mem(qword_ptr(rax).k(crate::x86::k2)),
            Operand::Reg(xmm0.into()),
            Operand::None,
        ];
        let mut pool = Operands::new();
        let mut starts = Vec::new();
        for chunk in operands.chunks(3) {
            starts.push(pool.push_all(chunk)?);
        }
        let mut buf = [Operand::None; MAX_OPERANDS];
        for (chunk, &start) in operands.chunks(3).zip(&starts) {
            assert_eq!(pool.unpack(start, chunk.len() as u32, &mut buf), chunk);
        }
        assert_eq!(pool.view(), operands.as_slice());
        // Kept in step with the view once it exists.
        pool.push_all(&operands[..2])?;
        assert_eq!(pool.view().len(), operands.len() + 2);
        assert!(pool.push_all(&[Operand::Imm(0); MAX_OPERANDS + 1]).is_err());
        Ok(())
    }

    /// Memory operands of every shape the small form takes come back
    /// equal (so `SmallMem::of` checks every field it does not keep).
    #[test]
    fn small_memory_covers_every_field() {
        use crate::x86::{byte_ptr, dword_ptr, ymmword_ptr};
        let bases = [
            MemBase::None,
            MemBase::Rip,
            MemBase::Reg(rax.into()),
            MemBase::Reg(r8.into()),
        ];
        let mut accepted = 0;
        for base in bases {
            for disp in [0i64, -8, 0x7fff_ffff, -0x8000_0000, 1 << 33] {
                let m = Mem::new(base, disp);
                for m in [
                    m,
                    m.with_index(rbx, 4),
                    m.with_index(r8, 1),
                    m.with_index(rsp, 8),
                ] {
                    for m in [m, byte_ptr(m), dword_ptr(m), ymmword_ptr(m), m.with_size(3)] {
                        if let Some(small) = SmallMem::of(&m) {
                            assert_eq!(small.unpack(), Some(m), "{m:?}");
                            accepted += 1;
                        }
                    }
                }
            }
        }
        assert!(accepted > 100);
    }

    /// Many elements across chunks keep their indices and values.
    #[test]
    fn chunked_array_keeps_its_elements() {
        let mut a = Chunked::new();
        for i in 0..3 * CHUNK as u32 + 5 {
            assert_eq!(a.push(i), i as usize);
        }
        assert_eq!(a.get(CHUNK + 1), Some(&(CHUNK as u32 + 1)));
        a[2 * CHUNK] = 0;
        assert_eq!((0..a.len()).filter(|&i| a[i] == 0).count(), 2);
        assert!(a.get(3 * CHUNK + 5).is_none());
        a.clear();
        assert_eq!((a.len(), a.push(9)), (0, 0));
    }
}
