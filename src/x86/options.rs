//! Per-instruction options: prefixes (`lock`, `rep`, ...), the branch-size
//! request (`short`/`long`), encoding hints (`{vex}`, `{evex}`), and AVX-512
//! embedded rounding / `{sae}`.

/// Embedded rounding mode for AVX-512 instructions (`{rn-sae}`..`{rz-sae}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// `{rn-sae}`: round to nearest even.
    RnSae = 0,
    /// `{rd-sae}`: round down.
    RdSae = 1,
    /// `{ru-sae}`: round up.
    RuSae = 2,
    /// `{rz-sae}`: round toward zero.
    RzSae = 3,
}

/// Options for one instruction, as bits. Combine with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InstOptions(pub(crate) u32);

impl InstOptions {
    /// No options.
    pub const NONE: InstOptions = InstOptions(0);
    /// `lock` prefix.
    pub const LOCK: InstOptions = InstOptions(1 << 0);
    /// `rep`/`repe` prefix (F3).
    pub const REP: InstOptions = InstOptions(1 << 1);
    /// `repne` prefix (F2).
    pub const REPNE: InstOptions = InstOptions(1 << 2);
    /// `xacquire` (F2).
    pub const XACQUIRE: InstOptions = InstOptions(1 << 3);
    /// `xrelease` (F3).
    pub const XRELEASE: InstOptions = InstOptions(1 << 4);
    /// `bnd` (F2).
    pub const BND: InstOptions = InstOptions(1 << 5);
    /// `notrack` (3E).
    pub const NOTRACK: InstOptions = InstOptions(1 << 6);
    /// Request the short (rel8) form of a branch; an error if it does not reach.
    pub const SHORT: InstOptions = InstOptions(1 << 7);
    /// Request the near (rel32) form of a branch even when rel8 would reach;
    /// for other instructions, the widest immediate (`movabs rcx, 1`).
    pub const LONG: InstOptions = InstOptions(1 << 8);
    /// `{vex}`: only VEX forms.
    pub const VEX: InstOptions = InstOptions(1 << 9);
    /// `{evex}`: only EVEX forms.
    pub const EVEX: InstOptions = InstOptions(1 << 10);
    /// `{sae}`: suppress all exceptions.
    pub const SAE: InstOptions = InstOptions(1 << 11);
    /// Embedded rounding present (mode in bits 12..13).
    pub(crate) const ER: InstOptions = InstOptions(1 << 14);
    /// `{load}`: reg-reg forms use the load direction (ModRM.rm is the source).
    pub const MODRM_LOAD: InstOptions = InstOptions(1 << 15);
    /// `{store}`: reg-reg forms use the store direction (ModRM.rm is the destination).
    pub const MODRM_STORE: InstOptions = InstOptions(1 << 16);
    /// `data16`: the 16-bit operand-size form (or a raw 66 prefix where there is none).
    pub const DATA16: InstOptions = InstOptions(1 << 17);
    /// `addr32`: the 32-bit address-size form (or a raw 67 prefix) in 64-bit mode.
    pub const ADDR32: InstOptions = InstOptions(1 << 18);
    /// `rex`: an empty REX prefix (40) even where none is needed.
    pub const REX: InstOptions = InstOptions(1 << 19);
    /// Only far forms (`ljmp`/`lcall`, m16:16/m16:32/m16:64 memory).
    pub const FAR: InstOptions = InstOptions(1 << 20);
    /// `{nf}` (APX): the EVEX-promoted form that writes no flags.
    pub const NF: InstOptions = InstOptions(1 << 21);
    /// `{dfv=...}` present (APX `ccmp`/`ctest`); the flags are in bits 23..26.
    pub(crate) const DFV: InstOptions = InstOptions(1 << 22);
    /// `{rex2}` (APX): a REX2 prefix even where none is needed (legacy
    /// map-0/map-1 forms that take one).
    pub const REX2: InstOptions = InstOptions(1 << 27);

    /// Options that restrict which forms apply.
    pub(crate) const HINTS: InstOptions = InstOptions(
        Self::VEX.0
            | Self::EVEX.0
            | Self::DATA16.0
            | Self::ADDR32.0
            | Self::FAR.0
            | Self::NF.0
            | Self::DFV.0
            | Self::REX2.0,
    );

    /// Every legacy prefix option.
    pub(crate) const PREFIXES: InstOptions = InstOptions(0x7f);

    /// Embedded rounding `{rn-sae}`..`{rz-sae}`.
    pub const fn rounding(mode: Rounding) -> InstOptions {
        InstOptions(Self::ER.0 | ((mode as u32) << 12))
    }

    /// The embedded rounding mode, if any.
    pub const fn rounding_mode(self) -> Option<Rounding> {
        if self.0 & Self::ER.0 == 0 {
            return None;
        }
        Some(match (self.0 >> 12) & 3 {
            0 => Rounding::RnSae,
            1 => Rounding::RdSae,
            2 => Rounding::RuSae,
            _ => Rounding::RzSae,
        })
    }

    /// `{dfv=...}` (APX `ccmp`/`ctest`): the flags a false condition sets,
    /// as EVEX.vvvv holds them: bit 3 OF, bit 2 SF, bit 1 ZF, bit 0 CF.
    pub const fn dfv(flags: u8) -> InstOptions {
        InstOptions(Self::DFV.0 | (((flags & 15) as u32) << 23))
    }

    /// The `{dfv=...}` flags (bit 3 OF, 2 SF, 1 ZF, 0 CF), if given.
    pub const fn dfv_flags(self) -> Option<u8> {
        if self.0 & Self::DFV.0 == 0 {
            None
        } else {
            Some(((self.0 >> 23) & 15) as u8)
        }
    }

    /// The `{dfv=...}` text (`{dfv=of,cf}`), empty without it.
    pub fn dfv_text(self) -> String {
        let Some(bits) = self.dfv_flags() else {
            return String::new();
        };
        let names: Vec<&str> = [(8, "of"), (4, "sf"), (2, "zf"), (1, "cf")]
            .into_iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| name)
            .collect();
        format!("{{dfv={}}}", names.join(","))
    }

    /// Whether all bits of `other` are set.
    pub const fn contains(self, other: InstOptions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: InstOptions) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no option is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The prefixes as Intel text, each followed by a space (`lock `, `{evex} `).
    pub fn prefix_text(self) -> String {
        let mut s = String::new();
        for (bit, text) in [
            (Self::LOCK, "lock "),
            (Self::REP, "rep "),
            (Self::REPNE, "repne "),
            (Self::XACQUIRE, "xacquire "),
            (Self::XRELEASE, "xrelease "),
            (Self::BND, "bnd "),
            (Self::NOTRACK, "notrack "),
            (Self::VEX, "{vex} "),
            (Self::EVEX, "{evex} "),
            (Self::NF, "{nf} "),
            (Self::REX2, "{rex2} "),
            (Self::MODRM_LOAD, "{load} "),
            (Self::MODRM_STORE, "{store} "),
            (Self::DATA16, "data16 "),
            (Self::ADDR32, "addr32 "),
            (Self::REX, "rex "),
        ] {
            if self.contains(bit) {
                s.push_str(text);
            }
        }
        s
    }
}

impl std::ops::BitOr for InstOptions {
    type Output = InstOptions;
    fn bitor(self, rhs: InstOptions) -> InstOptions {
        InstOptions(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for InstOptions {
    fn bitor_assign(&mut self, rhs: InstOptions) {
        self.0 |= rhs.0;
    }
}
