//! Integration tests of the JIT memory layer: running real code, W^X,
//! system-call economy, release and reuse, threads, both W^X modes, errors.

use std::sync::Arc;
use std::thread;

use jitforge::jit::{
    JitAddError, JitAllocator, JitAllocatorOptions, JitCode, JitError, JitRuntime,
    MAX_ALLOCATION_SIZE,
};

/// `mov eax, imm32; ret`
fn mov_eax_ret(value: u32) -> [u8; 6] {
    let v = value.to_le_bytes();
    [0xB8, v[0], v[1], v[2], v[3], 0xC3]
}

/// `lea rax, [rdi + rsi]; ret`
const ADD_RDI_RSI: [u8; 5] = [0x48, 0x8D, 0x04, 0x37, 0xC3];

/// A runtime in the given mode (dual mapping or forced `mprotect`).
fn runtime(dual_mapping: bool) -> JitRuntime {
    JitRuntime::with_options(JitAllocatorOptions {
        dual_mapping,
        ..JitAllocatorOptions::default()
    })
    .expect("create JIT runtime")
}

const MODES: [bool; 2] = [true, false];

fn call_u32(code: &JitCode) -> u32 {
    // SAFETY: every caller passes code built by `mov_eax_ret`, a complete C
    // function without arguments returning a u32 in eax.
    let f: extern "C" fn() -> u32 = unsafe { code.function() };
    f()
}

#[test]
fn runs_mov_eax_imm_ret() {
    for dual in MODES {
        let rt = runtime(dual);
        for value in [0, 1, 42, 0xDEAD_BEEF, u32::MAX] {
            let code = rt.add_bytes(&mov_eax_ret(value)).unwrap();
            assert_eq!(call_u32(&code), value, "dual={dual}");
        }
    }
}

#[test]
fn runs_a_function_with_arguments() {
    for dual in MODES {
        let rt = runtime(dual);
        let code = rt.add_bytes(&ADD_RDI_RSI).unwrap();
        assert_eq!(code.size(), 5);
        // SAFETY: `lea rax, [rdi + rsi]; ret` is a System V C function of two
        // u64 arguments returning u64.
        let add: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
        assert_eq!(add(2, 3), 5);
        assert_eq!(add(u64::MAX, 2), 1);
        assert_eq!(add(1 << 40, 1 << 41), 3 << 40);
    }
}

#[test]
fn add_with_gives_the_final_address_for_relocation() {
    for dual in MODES {
        let rt = runtime(dual);
        // mov rax, imm64 (patched with the code's own address); ret
        let code = rt
            .add_with(11, |buf, address| {
                assert_eq!(buf.len(), 11);
                buf[0] = 0x48;
                buf[1] = 0xB8;
                buf[2..10].copy_from_slice(&address.to_le_bytes());
                buf[10] = 0xC3;
                Ok::<(), String>(())
            })
            .unwrap();
        // SAFETY: a complete C function returning u64 in rax.
        let f: extern "C" fn() -> u64 = unsafe { code.function() };
        assert_eq!(f(), code.address());
        assert_eq!(code.as_ptr() as u64, code.address());
    }
}

#[test]
fn write_errors_come_back_and_release_memory() {
    for dual in MODES {
        let rt = runtime(dual);
        let result = rt.add_with(32, |_, _| Err("label out of range".to_string()));
        match result {
            Err(JitAddError::Write(message)) => assert_eq!(message, "label out of range"),
            other => panic!("expected a write error, got {other:?}"),
        }
        let stats = rt.stats();
        assert_eq!((stats.allocations, stats.used_bytes), (0, 0));
    }
}

/// The permission fields of /proc/self/maps lines that are both writable and
/// executable.
fn writable_and_executable_mappings() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter(|line| {
            let perms = line.split_whitespace().nth(1).unwrap_or("");
            perms.contains('w') && perms.contains('x')
        })
        .map(str::to_owned)
        .collect()
}

/// The permissions of the mapping that contains `address`.
fn permissions_at(address: u64) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        (start..end).contains(&address).then(|| perms.to_owned())
    })
}

#[test]
fn no_mapping_is_writable_and_executable() {
    for dual in MODES {
        let rt = runtime(dual);
        let codes: Vec<JitCode> = (0..100)
            .map(|i| rt.add_bytes(&mov_eax_ret(i)).unwrap())
            .collect();
        // A write in progress must not be executable either.
        let pending = rt
            .add_with(64, |_, address| {
                let perms = permissions_at(address).expect("code address is mapped");
                assert!(!perms.contains('x') || !perms.contains('w'), "{perms}");
                assert!(writable_and_executable_mappings().is_empty());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(
            writable_and_executable_mappings(),
            Vec::<String>::new(),
            "W^X violated (dual={dual})"
        );
        for code in codes.iter().chain([&pending]) {
            let perms = permissions_at(code.address()).expect("code address is mapped");
            assert!(
                perms.starts_with("r-x"),
                "code mapped {perms} (dual={dual})"
            );
        }
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(call_u32(code), i as u32);
        }
    }
}

#[test]
fn ten_thousand_functions_cost_few_mmaps() {
    for dual in MODES {
        let rt = runtime(dual);
        let codes: Vec<JitCode> = (0..10_000)
            .map(|i| rt.add_bytes(&mov_eax_ret(i * 7)).unwrap())
            .collect();
        let stats = rt.stats();
        assert_eq!(stats.allocations, 10_000);
        if stats.dual_mapping {
            // 10,000 * 64 bytes fit in one 1 MiB region: memfd + 2 mmaps.
            assert_eq!(stats.regions, 1, "{stats:?}");
            assert_eq!(stats.mmap_calls, 2, "{stats:?}");
            assert_eq!(stats.mprotect_calls, 0, "{stats:?}");
        } else {
            // A page per function (~40 MiB): regions of 1, 2, 4, 8, 16, 16 MiB.
            assert!(stats.mmap_calls <= 8, "{stats:?}");
            assert_eq!(stats.mprotect_calls, 10_000, "{stats:?}");
        }
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(call_u32(code), i as u32 * 7);
        }
    }
}

#[test]
fn freed_memory_is_reused() {
    for dual in MODES {
        let rt = runtime(dual);
        let first = rt.add_bytes(&mov_eax_ret(1)).unwrap();
        let second = rt.add_bytes(&mov_eax_ret(2)).unwrap();
        let third = rt.add_bytes(&mov_eax_ret(3)).unwrap();
        let gap = second.address();
        drop(second);
        let before = rt.stats();
        let again = rt.add_bytes(&mov_eax_ret(4)).unwrap();
        if before.dual_mapping {
            // The gap left by `second` is filled by the next allocation.
            assert_eq!(again.address(), gap);
        } else {
            // mprotect mode prefers still-writable pages; the released (RX)
            // page is reused once those run out (the churn below).
            assert_ne!(again.address(), gap);
        }
        assert_eq!(call_u32(&again), 4);
        assert_eq!(call_u32(&first), 1);
        assert_eq!(call_u32(&third), 3);
        let after = rt.stats();
        assert_eq!(after.mmap_calls, before.mmap_calls);

        // Churn: add and drop many times (more than a region holds in the
        // mprotect mode's page-per-function layout); nothing new is mapped.
        let mut reused_gap = again.address() == gap;
        for i in 0..1000 {
            let code = rt.add_bytes(&mov_eax_ret(i)).unwrap();
            assert_eq!(call_u32(&code), i);
            reused_gap |= code.address() == gap;
        }
        assert!(reused_gap, "the freed address was handed out again");
        let after = rt.stats();
        assert_eq!(after.mmap_calls, before.mmap_calls);
        assert_eq!(after.reserved_bytes, before.reserved_bytes);
        assert_eq!(after.allocations, 3);
    }
}

#[test]
fn dropping_code_releases_memory() {
    for dual in MODES {
        let rt = runtime(dual);
        let empty = rt.stats();
        assert_eq!(
            (empty.allocations, empty.used_bytes, empty.regions),
            (0, 0, 0)
        );
        let codes: Vec<JitCode> = (0..3000)
            .map(|i| rt.add_bytes(&mov_eax_ret(i)).unwrap())
            .collect();
        let full = rt.stats();
        assert_eq!(full.allocations, 3000);
        assert!(full.used_bytes >= 3000 * 6);
        assert!(full.reserved_bytes >= full.used_bytes);
        drop(codes);
        let stats = rt.stats();
        assert_eq!((stats.allocations, stats.used_bytes), (0, 0));
        // Empty regions are unmapped except one kept for reuse; trim frees it.
        assert!(stats.regions <= 1, "{stats:?}");
        rt.allocator().trim();
        let trimmed = rt.stats();
        assert_eq!((trimmed.regions, trimmed.reserved_bytes), (0, 0));
        assert_eq!(
            trimmed.munmap_calls, trimmed.mmap_calls,
            "every mapping was unmapped: {trimmed:?}"
        );
    }
}

#[test]
fn many_threads_add_and_call_code_at_once() {
    for dual in MODES {
        let rt = runtime(dual);
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let rt = rt.clone();
                thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..300u32 {
                        let value = t * 1_000_000 + i;
                        let code = rt.add_bytes(&mov_eax_ret(value)).unwrap();
                        assert_eq!(call_u32(&code), value);
                        if i % 3 == 0 {
                            kept.push((value, code));
                        }
                        let add = rt.add_bytes(&ADD_RDI_RSI).unwrap();
                        // SAFETY: `lea rax, [rdi + rsi]; ret`, C ABI.
                        let f: extern "C" fn(u64, u64) -> u64 = unsafe { add.function() };
                        assert_eq!(f(u64::from(value), 1), u64::from(value) + 1);
                    }
                    // Everything kept is still intact after the other threads'
                    // allocations and releases.
                    for (value, code) in &kept {
                        assert_eq!(call_u32(code), *value);
                    }
                    kept
                })
            })
            .collect();
        let kept: Vec<(u32, JitCode)> = threads
            .into_iter()
            .flat_map(|handle| handle.join().expect("worker thread"))
            .collect();
        assert_eq!(kept.len(), 8 * 100);
        // Handles moved across threads still work.
        for (value, code) in &kept {
            assert_eq!(call_u32(code), *value);
        }
        assert_eq!(rt.stats().allocations, kept.len());
        assert!(writable_and_executable_mappings().is_empty());
    }
}

#[test]
fn code_handles_can_be_shared_between_threads() {
    let rt = runtime(true);
    let code = Arc::new(rt.add_bytes(&ADD_RDI_RSI).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let code = Arc::clone(&code);
            thread::spawn(move || {
                // SAFETY: `lea rax, [rdi + rsi]; ret`, C ABI.
                let f: extern "C" fn(u64, u64) -> u64 = unsafe { code.function() };
                (0..1000).all(|i| f(t, i) == t + i)
            })
        })
        .collect();
    for handle in threads {
        assert!(handle.join().unwrap());
    }
}

#[test]
fn size_errors() {
    for dual in MODES {
        let rt = runtime(dual);
        assert_eq!(rt.add_bytes(&[]).unwrap_err(), JitError::ZeroSize);
        for size in [0, MAX_ALLOCATION_SIZE + 1, 1 << 48, usize::MAX] {
            let error = rt.add_with(size, |_, _| Ok::<(), ()>(())).unwrap_err();
            match (size, error) {
                (0, JitAddError::Jit(JitError::ZeroSize)) => {}
                (_, JitAddError::Jit(JitError::TooLarge { size: s, .. })) => assert_eq!(s, size),
                (_, other) => panic!("size {size}: unexpected {other:?}"),
            }
        }
        let stats = rt.stats();
        assert_eq!((stats.mmap_calls, stats.allocations), (0, 0));
        let message = JitError::TooLarge {
            size: usize::MAX,
            max: MAX_ALLOCATION_SIZE,
        }
        .to_string();
        assert!(message.contains("too large"), "{message}");
    }
}

#[test]
fn invalid_options_are_errors() {
    let result = JitRuntime::with_options(JitAllocatorOptions {
        granularity: 3,
        ..JitAllocatorOptions::default()
    });
    assert!(matches!(result, Err(JitError::InvalidOptions(_))));
}

#[test]
fn mprotect_mode_is_used_when_asked() {
    let rt = runtime(false);
    let code = rt.add_bytes(&mov_eax_ret(9)).unwrap();
    let stats = rt.stats();
    assert!(!stats.dual_mapping);
    assert_eq!(stats.memfd_calls, 0);
    assert_eq!(stats.mprotect_calls, 1);
    // Each allocation owns whole pages in this mode.
    assert_eq!(code.address() % 4096, 0);
    assert_eq!(call_u32(&code), 9);
}

#[cfg(target_os = "linux")]
#[test]
fn dual_mapping_is_the_default_on_linux() {
    let rt = JitRuntime::new().unwrap();
    let code = rt.add_bytes(&mov_eax_ret(3)).unwrap();
    let stats = rt.stats();
    if !stats.dual_mapping {
        // The kernel or a sandbox refused executable memfd mappings; the
        // allocator fell back to mprotect, which the other tests cover.
        eprintln!("dual mapping unavailable here: {stats:?}");
        return;
    }
    assert_eq!(stats.memfd_calls, 1);
    assert_eq!(stats.mmap_calls, 2);
    assert_eq!(stats.mprotect_calls, 0);
    assert_eq!(code.address() % 64, 0);
    assert_eq!(call_u32(&code), 3);
}

#[test]
fn low_level_allocator_batch_publish() {
    let allocator = JitAllocator::new(JitAllocatorOptions {
        dual_mapping: false,
        ..JitAllocatorOptions::default()
    })
    .unwrap();
    let mut spans = Vec::new();
    for i in 0..50u32 {
        let mut span = allocator.allocate(6).unwrap();
        allocator
            .writable(&mut span)
            .unwrap()
            .copy_from_slice(&mov_eax_ret(i));
        spans.push(span);
    }
    allocator.publish_batch(&mut spans).unwrap();
    assert_eq!(allocator.stats().mprotect_calls, 1);
    for (i, span) in spans.iter().enumerate() {
        // SAFETY: each span holds `mov eax, i; ret` and is published; the
        // allocator is alive.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(span.rx_ptr()) };
        assert_eq!(f(), i as u32);
    }
    for span in spans {
        allocator.release(span).unwrap();
    }
    assert_eq!(allocator.stats().allocations, 0);
}

/// Rough timings, printed only (no assertions):
/// `cargo test --release -p jitforge --test jit_memory -- --ignored --nocapture timings`
#[test]
#[ignore = "prints timings; run explicitly"]
fn timings() {
    use std::time::Instant;
    for dual in MODES {
        let rt = runtime(dual);
        let n = 10_000u32;
        let start = Instant::now();
        let codes: Vec<JitCode> = (0..n)
            .map(|i| rt.add_bytes(&mov_eax_ret(i)).unwrap())
            .collect();
        let add = start.elapsed();
        let start = Instant::now();
        drop(codes);
        let release = start.elapsed();

        let allocator = rt.allocator();
        let start = Instant::now();
        let spans: Vec<_> = (0..n).map(|_| allocator.allocate(48).unwrap()).collect();
        let allocate = start.elapsed();
        let start = Instant::now();
        for span in spans {
            allocator.release(span).unwrap();
        }
        let free = start.elapsed();
        let start = Instant::now();
        for i in 0..n {
            drop(rt.add_bytes(&mov_eax_ret(i)).unwrap());
        }
        let churn = start.elapsed();
        println!(
            "dual={dual}: add+drop on reused memory {:.0} ns",
            churn.as_nanos() as f64 / f64::from(n)
        );
        println!(
            "dual={dual}: add_bytes {:.0} ns, drop JitCode {:.0} ns, allocate {:.0} ns, release {:.0} ns (per op, {n} ops); {:?}",
            add.as_nanos() as f64 / f64::from(n),
            release.as_nanos() as f64 / f64::from(n),
            allocate.as_nanos() as f64 / f64::from(n),
            free.as_nanos() as f64 / f64::from(n),
            rt.stats()
        );
    }
}
