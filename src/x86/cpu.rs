//! Host CPU feature detection: [`CpuFeatures`], a set of the database's
//! [`CpuFeature`]s, and [`CpuFeatures::host`], which asks `cpuid` and, for
//! the AVX, AVX-512 and AMX register states, `xgetbv` (a feature whose state
//! the operating system has not enabled is reported absent).
//!
//! ```
//! use jitforge::x86::CpuFeature;
//! use jitforge::x86::cpu::CpuFeatures;
//!
//! let host = CpuFeatures::host();
//! if cfg!(target_arch = "x86_64") {
//!     assert!(host.contains(CpuFeature::Sse2));
//! }
//! println!("{host}");
//! ```

use super::db::CpuFeature;
use std::fmt;

const WORDS: usize = 4;
const _: () = assert!(
    CpuFeature::ALL.len() <= WORDS * 64,
    "CpuFeatures holds at most 256 features"
);

/// A set of CPU features.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CpuFeatures {
    bits: [u64; WORDS],
}

impl CpuFeatures {
    /// The empty set.
    pub const fn new() -> CpuFeatures {
        CpuFeatures { bits: [0; WORDS] }
    }

    /// Every feature the database knows.
    pub fn all() -> CpuFeatures {
        CpuFeature::ALL.iter().copied().collect()
    }

    /// Adds a feature.
    pub fn insert(&mut self, f: CpuFeature) {
        let i = f as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    /// Removes a feature.
    pub fn remove(&mut self, f: CpuFeature) {
        let i = f as usize;
        self.bits[i / 64] &= !(1 << (i % 64));
    }

    /// Whether the feature is in the set.
    pub fn contains(&self, f: CpuFeature) -> bool {
        let i = f as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether every feature of `features` is in the set.
    pub fn contains_all(&self, features: &[CpuFeature]) -> bool {
        features.iter().all(|f| self.contains(*f))
    }

    /// Number of features in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The features, in name order.
    pub fn iter(&self) -> impl Iterator<Item = CpuFeature> + '_ {
        CpuFeature::ALL
            .iter()
            .copied()
            .filter(|f| self.contains(*f))
    }

    /// Looks a feature up by its database name (`avx512f`, `sse4_1`).
    pub fn feature_by_name(name: &str) -> Option<CpuFeature> {
        CpuFeature::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The features of the machine running this program (empty on non-x86 hosts).
    pub fn host() -> CpuFeatures {
        let mut set = CpuFeatures::new();
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        detect::fill(&mut set);
        set
    }
}

impl FromIterator<CpuFeature> for CpuFeatures {
    fn from_iter<I: IntoIterator<Item = CpuFeature>>(iter: I) -> CpuFeatures {
        let mut set = CpuFeatures::new();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

impl fmt::Display for CpuFeatures {
    /// The feature names separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, feature) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(feature.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|x| x.name()))
            .finish()
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod detect {
    use super::CpuFeatures;
    #[cfg(target_arch = "x86")]
    use std::arch::x86::{__cpuid_count, CpuidResult};
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::{__cpuid_count, CpuidResult};

    /// Where a feature's bit lives.
    #[derive(Clone, Copy)]
    enum Src {
        /// Present on every x86 processor this code can run on.
        Always,
        /// Never reported (single-CPU, removed, or not detectable).
        Never,
        /// `cpuid(leaf, subleaf)` register (0 eax, 1 ebx, 2 ecx, 3 edx) bit.
        Bit(u32, u32, u8, u8),
        /// Either of two bits.
        Either((u32, u32, u8, u8), (u32, u32, u8, u8)),
    }

    /// Which OS-enabled register state a feature needs.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        None,
        Ymm,
        Zmm,
        Tile,
        Bnd,
        /// APX's extended general-purpose registers (XCR0 bit 19).
        Egpr,
    }

    const EAX: u8 = 0;
    const EBX: u8 = 1;
    const ECX: u8 = 2;
    const EDX: u8 = 3;

    /// The cpuid location of a database feature name.
    fn source(name: &str) -> (Src, State) {
        use Src::*;
        use State as S;
        let b = |leaf, sub, reg, bit| Bit(leaf, sub, reg, bit);
        match name {
            "intel8086" | "intel186" | "intel286" | "intel386" | "intel486" | "cpuid"
            | "fpu287" | "fpu387" | "multibytenop" | "rdpmc" | "smm" => (Always, S::None),
            "intel286_only" | "intel386_a0_only" | "intel486_a_only" | "fpu287xl_only"
            | "fpu387sl_only" | "cl1invmb" | "udbg" | "tdx" | "tse" | "oss" | "pcommit" => {
                (Never, S::None)
            }
            "x64" => (b(0x8000_0001, 0, EDX, 29), S::None),
            "fpu" => (b(1, 0, EDX, 0), S::None),
            "tsc" => (b(1, 0, EDX, 4), S::None),
            "msr" => (b(1, 0, EDX, 5), S::None),
            "cx8" => (b(1, 0, EDX, 8), S::None),
            "sep" => (b(1, 0, EDX, 11), S::None),
            "cmov" => (b(1, 0, EDX, 15), S::None),
            "clfsh" => (b(1, 0, EDX, 19), S::None),
            "mmx" => (b(1, 0, EDX, 23), S::None),
            "fxsr" => (b(1, 0, EDX, 24), S::None),
            "sse" => (b(1, 0, EDX, 25), S::None),
            "sse2" | "pause" => (b(1, 0, EDX, 26), S::None),
            "sse3" => (b(1, 0, ECX, 0), S::None),
            "pclmulqdq" => (b(1, 0, ECX, 1), S::None),
            "monitor" => (b(1, 0, ECX, 3), S::None),
            "vmx" | "invept" | "invvpid" => (b(1, 0, ECX, 5), S::None),
            "smx" => (b(1, 0, ECX, 6), S::None),
            "ssse3" => (b(1, 0, ECX, 9), S::None),
            "fma" => (b(1, 0, ECX, 12), S::Ymm),
            "cmpxchg16b" => (b(1, 0, ECX, 13), S::None),
            "sse4_1" => (b(1, 0, ECX, 19), S::None),
            "sse4_2" => (b(1, 0, ECX, 20), S::None),
            "movbe" => (b(1, 0, ECX, 22), S::None),
            "popcnt" => (b(1, 0, ECX, 23), S::None),
            "aes" => (b(1, 0, ECX, 25), S::None),
            "xsave" => (b(1, 0, ECX, 26), S::None),
            "avx" => (b(1, 0, ECX, 28), S::Ymm),
            "f16c" => (b(1, 0, ECX, 29), S::Ymm),
            "rdrand" => (b(1, 0, ECX, 30), S::None),
            "fsgsbase" => (b(7, 0, EBX, 0), S::None),
            "sgx1" => (b(0x12, 0, EAX, 0), S::None),
            "bmi1" => (b(7, 0, EBX, 3), S::None),
            "hle_or_rtm" => (Either((7, 0, EBX, 4), (7, 0, EBX, 11)), S::None),
            "avx2" => (b(7, 0, EBX, 5), S::Ymm),
            "bmi2" => (b(7, 0, EBX, 8), S::None),
            "invpcid" => (b(7, 0, EBX, 10), S::None),
            "rtm" => (b(7, 0, EBX, 11), S::None),
            "mpx" => (b(7, 0, EBX, 14), S::Bnd),
            "avx512f" => (b(7, 0, EBX, 16), S::Zmm),
            "avx512dq" => (b(7, 0, EBX, 17), S::Zmm),
            "rdseed" => (b(7, 0, EBX, 18), S::None),
            "adx" => (b(7, 0, EBX, 19), S::None),
            "smap" => (b(7, 0, EBX, 20), S::None),
            "avx512_ifma" => (b(7, 0, EBX, 21), S::Zmm),
            "clflushopt" => (b(7, 0, EBX, 23), S::None),
            "clwb" => (b(7, 0, EBX, 24), S::None),
            "avx512cd" => (b(7, 0, EBX, 28), S::Zmm),
            "sha" => (b(7, 0, EBX, 29), S::None),
            "avx512bw" => (b(7, 0, EBX, 30), S::Zmm),
            "avx512vl" => (b(7, 0, EBX, 31), S::Zmm),
            "prefetchwt1" => (b(7, 0, ECX, 0), S::None),
            "avx512_vbmi" => (b(7, 0, ECX, 1), S::Zmm),
            "pku" => (b(7, 0, ECX, 3), S::None),
            "waitpkg" => (b(7, 0, ECX, 5), S::None),
            "avx512_vbmi2" => (b(7, 0, ECX, 6), S::Zmm),
            "cet_ss" => (b(7, 0, ECX, 7), S::None),
            "gfni" => (b(7, 0, ECX, 8), S::None),
            "vaes" => (b(7, 0, ECX, 9), S::Ymm),
            "vpclmulqdq" => (b(7, 0, ECX, 10), S::Ymm),
            "avx512_vnni" => (b(7, 0, ECX, 11), S::Zmm),
            "avx512_bitalg" => (b(7, 0, ECX, 12), S::Zmm),
            "avx512_vpopcntdq" => (b(7, 0, ECX, 14), S::Zmm),
            "rdpid" => (b(7, 0, ECX, 22), S::None),
            "kl" => (b(7, 0, ECX, 23), S::None),
            "cldemote" => (b(7, 0, ECX, 25), S::None),
            "movdiri" => (b(7, 0, ECX, 27), S::None),
            "movdir64b" => (b(7, 0, ECX, 28), S::None),
            "enqcmd" => (b(7, 0, ECX, 29), S::None),
            "uintr" => (b(7, 0, EDX, 5), S::None),
            "avx512_vp2intersect" => (b(7, 0, EDX, 8), S::Zmm),
            "serialize" => (b(7, 0, EDX, 14), S::None),
            "tsxldtrk" => (b(7, 0, EDX, 16), S::None),
            "pconfig" => (b(7, 0, EDX, 18), S::None),
            "cet_ibt" => (b(7, 0, EDX, 20), S::None),
            "amx_bf16" => (b(7, 0, EDX, 22), S::Tile),
            "avx512_fp16" => (b(7, 0, EDX, 23), S::Zmm),
            "amx_tile" => (b(7, 0, EDX, 24), S::Tile),
            "amx_int8" => (b(7, 0, EDX, 25), S::Tile),
            "sha512" => (b(7, 1, EAX, 0), S::Ymm),
            "sm3" => (b(7, 1, EAX, 1), S::Ymm),
            "sm4" => (b(7, 1, EAX, 2), S::Ymm),
            "rao_int" => (b(7, 1, EAX, 3), S::None),
            "avx_vnni" => (b(7, 1, EAX, 4), S::Ymm),
            "avx512_bf16" => (b(7, 1, EAX, 5), S::Zmm),
            "cmpccxadd" => (b(7, 1, EAX, 7), S::None),
            "fred" => (b(7, 1, EAX, 17), S::None),
            "lkgs" => (b(7, 1, EAX, 18), S::None),
            "wrmsrns" => (b(7, 1, EAX, 19), S::None),
            "amx_fp16" => (b(7, 1, EAX, 21), S::Tile),
            "hreset" => (b(7, 1, EAX, 22), S::None),
            "avx_ifma" => (b(7, 1, EAX, 23), S::Ymm),
            "msrlist" => (b(7, 1, EAX, 27), S::None),
            "avx_vnni_int8" => (b(7, 1, EDX, 4), S::Ymm),
            "avx_ne_convert" => (b(7, 1, EDX, 5), S::Ymm),
            "amx_complex" => (b(7, 1, EDX, 8), S::Tile),
            "avx_vnni_int16" => (b(7, 1, EDX, 10), S::Ymm),
            "prefetchiti" => (b(7, 1, EDX, 14), S::None),
            "apx_f" => (b(7, 1, EDX, 21), S::Egpr),
            "xsaveopt" => (b(0xd, 1, EAX, 0), S::None),
            "xsavec" => (b(0xd, 1, EAX, 1), S::None),
            "xsaves" => (b(0xd, 1, EAX, 3), S::None),
            "ptwrite" => (b(0x14, 0, EBX, 4), S::None),
            "aeskle" => (b(0x19, 0, EBX, 0), S::None),
            "wide_kl" => (b(0x19, 0, EBX, 2), S::None),
            "svm" => (b(0x8000_0001, 0, ECX, 2), S::None),
            "skinit_or_svm" => (
                Either((0x8000_0001, 0, ECX, 2), (0x8000_0001, 0, ECX, 12)),
                S::None,
            ),
            "lzcnt" => (b(0x8000_0001, 0, ECX, 5), S::None),
            "sse4a" => (b(0x8000_0001, 0, ECX, 6), S::None),
            "prefetchw" => (b(0x8000_0001, 0, ECX, 8), S::None),
            "xop" => (b(0x8000_0001, 0, ECX, 11), S::Ymm),
            "lwp" => (b(0x8000_0001, 0, ECX, 15), S::None),
            "fma4" => (b(0x8000_0001, 0, ECX, 16), S::Ymm),
            "tbm" => (b(0x8000_0001, 0, ECX, 21), S::None),
            "monitorx" => (b(0x8000_0001, 0, ECX, 29), S::None),
            "syscall" => (b(0x8000_0001, 0, EDX, 11), S::None),
            "rdtscp" => (b(0x8000_0001, 0, EDX, 27), S::None),
            "d3nowext" => (b(0x8000_0001, 0, EDX, 30), S::None),
            "d3now" => (b(0x8000_0001, 0, EDX, 31), S::None),
            "clzero" => (b(0x8000_0008, 0, EBX, 0), S::None),
            "invlpgb" => (b(0x8000_0008, 0, EBX, 3), S::None),
            "rdpru" => (b(0x8000_0008, 0, EBX, 4), S::None),
            "mcommit" => (b(0x8000_0008, 0, EBX, 8), S::None),
            "wbnoinvd" => (b(0x8000_0008, 0, EBX, 9), S::None),
            "sev_es" => (b(0x8000_001f, 0, EAX, 3), S::None),
            "sev_snp" | "rmpquery" => (b(0x8000_001f, 0, EAX, 4), S::None),
            _ => (Never, S::None),
        }
    }

    fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
        __cpuid_count(leaf, sub)
    }

    fn xgetbv0() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: only called after cpuid reported OSXSAVE, which means the OS
        // enabled XGETBV; reading XCR0 has no side effects.
        unsafe {
            std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
        }
        ((hi as u64) << 32) | lo as u64
    }

    pub(super) fn fill(set: &mut CpuFeatures) {
        let max = cpuid(0, 0).eax;
        let max_ext = cpuid(0x8000_0000, 0).eax;
        let mut cache: Vec<((u32, u32), CpuidResult)> = Vec::new();
        let mut read = |leaf: u32, sub: u32| -> CpuidResult {
            let supported = if leaf >= 0x8000_0000 {
                leaf <= max_ext
            } else {
                leaf <= max
            };
            if !supported {
                return CpuidResult {
                    eax: 0,
                    ebx: 0,
                    ecx: 0,
                    edx: 0,
                };
            }
            if let Some((_, r)) = cache.iter().find(|(k, _)| *k == (leaf, sub)) {
                return *r;
            }
            let r = cpuid(leaf, sub);
            cache.push(((leaf, sub), r));
            r
        };
        let osxsave = read(1, 0).ecx & (1 << 27) != 0;
        let xcr0 = if osxsave { xgetbv0() } else { 0 };
        let ymm = xcr0 & 0b110 == 0b110;
        let zmm = ymm && xcr0 & 0b1110_0000 == 0b1110_0000;
        let tile = xcr0 & (0b11 << 17) == 0b11 << 17;
        let bnd = xcr0 & 0b11000 == 0b11000;
        let egpr = xcr0 & (1 << 19) != 0;
        let mut test = |(leaf, sub, reg, bit): (u32, u32, u8, u8)| {
            let r = read(leaf, sub);
            let v = match reg {
                EAX => r.eax,
                EBX => r.ebx,
                ECX => r.ecx,
                _ => r.edx,
            };
            v & (1 << bit) != 0
        };
        for f in super::CpuFeature::ALL {
            let (src, state) = source(f.name());
            let present = match src {
                Src::Always => true,
                Src::Never => false,
                Src::Bit(l, s, r, b) => test((l, s, r, b)),
                Src::Either(a, b) => test(a) || test(b),
            };
            let enabled = match state {
                State::None => true,
                State::Ymm => ymm,
                State::Zmm => zmm,
                State::Tile => tile,
                State::Bnd => bnd,
                State::Egpr => egpr,
            };
            if present && enabled {
                set.insert(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut s = CpuFeatures::new();
        assert!(s.is_empty());
        s.insert(CpuFeature::Avx2);
        s.insert(CpuFeature::Sse2);
        assert!(s.contains(CpuFeature::Avx2) && !s.contains(CpuFeature::Avx));
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "avx2 sse2");
        s.remove(CpuFeature::Avx2);
        assert_eq!(s.iter().collect::<Vec<_>>(), [CpuFeature::Sse2]);
        assert_eq!(CpuFeatures::all().len(), CpuFeature::ALL.len());
        assert_eq!(
            CpuFeatures::feature_by_name("sse4_1"),
            Some(CpuFeature::Sse41)
        );
        assert!(CpuFeatures::all().contains_all(&[CpuFeature::Avx512f, CpuFeature::Avx512vl]));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn host_is_consistent() {
        let h = CpuFeatures::host();
        for f in ["x64", "sse", "sse2", "cmov", "fpu", "intel386", "cpuid"] {
            assert!(h.contains(CpuFeatures::feature_by_name(f).unwrap()), "{f}");
        }
        let has = |n: &str| h.contains(CpuFeatures::feature_by_name(n).unwrap());
        if has("avx512f") {
            assert!(has("avx") && has("avx2"));
        }
        if has("avx2") {
            assert!(has("avx"));
        }
    }

    /// On Linux, the kernel's view (`/proc/cpuinfo` flags, which also hides
    /// what the OS does not enable) agrees for the common features.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn host_agrees_with_proc_cpuinfo() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let Some(flags) = info.lines().find(|l| l.starts_with("flags")) else {
            return;
        };
        let flags: Vec<&str> = flags.split_whitespace().collect();
        let h = CpuFeatures::host();
        for (ours, linux) in [
            ("sse3", "pni"),
            ("ssse3", "ssse3"),
            ("sse4_1", "sse4_1"),
            ("sse4_2", "sse4_2"),
            ("avx", "avx"),
            ("avx2", "avx2"),
            ("fma", "fma"),
            ("f16c", "f16c"),
            ("bmi1", "bmi1"),
            ("bmi2", "bmi2"),
            ("adx", "adx"),
            ("aes", "aes"),
            ("pclmulqdq", "pclmulqdq"),
            ("popcnt", "popcnt"),
            ("movbe", "movbe"),
            ("avx512f", "avx512f"),
            ("avx512bw", "avx512bw"),
            ("avx512vl", "avx512vl"),
            ("avx512dq", "avx512dq"),
            ("sha", "sha_ni"),
            ("gfni", "gfni"),
            ("vaes", "vaes"),
            ("lzcnt", "abm"),
        ] {
            let f = CpuFeatures::feature_by_name(ours).unwrap();
            assert_eq!(
                h.contains(f),
                flags.contains(&linux),
                "{ours} vs /proc/cpuinfo {linux}"
            );
        }
    }
}
