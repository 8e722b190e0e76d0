//! Workers are forked by the fork server that `init()` launches: each starts
//! from this program as it was at `init()`, yet sees the parent's
//! environment, working directory, file mode creation mask, resource limits
//! and CPU affinity as they are when the worker starts (never those of an
//! earlier start), and is shown as a worker in `ps`.

mod support;

use std::path::PathBuf;

use procpool::{pool_task, Pool};
use support::{assert_no_children, await_fork_server, children_of, fork_server, serial};

procpool::enable_test_support!();

/// What this worker sees of its start.
#[pool_task]
fn context(var: String) -> (u32, u32, Option<String>, PathBuf, String) {
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    (
        std::process::id(),
        std::os::unix::process::parent_id(),
        std::env::var(var).ok(),
        std::env::current_dir().unwrap(),
        String::from_utf8_lossy(&cmdline).replace('\0', " "),
    )
}

/// This worker's pid, parent, file mode creation mask and its limits of
/// open files and of POSIX message queue bytes (`[soft, hard]`).
#[pool_task]
fn mask_and_limits() -> (u32, u32, u32, [u64; 2], [u64; 2]) {
    (
        std::process::id(),
        std::os::unix::process::parent_id(),
        read_umask(),
        get_limit(libc::RLIMIT_NOFILE),
        get_limit(libc::RLIMIT_MSGQUEUE),
    )
}

/// This process's umask, read without changing it.
fn read_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .unwrap();
    u32::from_str_radix(line.trim(), 8).unwrap()
}

fn get_limit(resource: libc::__rlimit_resource_t) -> [u64; 2] {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut limit) }, 0);
    [limit.rlim_cur, limit.rlim_max]
}

/// Sets a limit; the error number if it cannot be.
fn set_limit(resource: libc::__rlimit_resource_t, [soft, hard]: [u64; 2]) -> Result<(), i32> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given.
    match unsafe { libc::setrlimit(resource, &limit) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// The capability to raise hard resource limits.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process has capability `cap` in effect.
fn has_capability(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(line.trim(), 16).unwrap() & (1 << cap) != 0
}

/// How many CPUs this worker may run on.
#[pool_task]
fn allowed_cpus() -> usize {
    libc_count(&allowed_set())
}

/// The calling thread's CPU affinity.
fn allowed_set() -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain bits; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        set
    }
}

fn libc_count(set: &libc::cpu_set_t) -> usize {
    // SAFETY: reads the bits of a valid set.
    unsafe { libc::CPU_COUNT(set) as usize }
}

fn libc_isset(cpu: usize, set: &libc::cpu_set_t) -> bool {
    // SAFETY: `cpu` is below CPU_SETSIZE; reads the bits of a valid set.
    unsafe { libc::CPU_ISSET(cpu, set) }
}

#[test]
fn forked_workers_see_the_parents_environment_and_directory_of_the_moment() {
    let _serial = serial();
    assert_eq!(await_fork_server(), Some(true), "workers are forked");
    let server = fork_server().expect("a test binary runs a fork server");
    // Both set after init(), long after the server started.
    std::env::set_var("PROCPOOL_TEST_LATE", "set after init");
    let dir = support::Scratch::temp_dir("fork-cwd");
    let before = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    let pool = Pool::new(2).unwrap();
    std::env::set_current_dir(&before).unwrap();
    std::env::remove_var("PROCPOOL_TEST_LATE");
    let workers = children_of(server);
    assert_eq!(workers.len(), 2, "both workers are the server's children");
    for _ in 0..4 {
        let (pid, parent, var, cwd, cmdline) =
            apply_context(&pool, "PROCPOOL_TEST_LATE".into()).unwrap();
        assert!(workers.contains(&pid), "{pid} not among {workers:?}");
        assert_eq!(parent, server);
        assert_eq!(var.as_deref(), Some("set after init"));
        assert_eq!(cwd.canonicalize().unwrap(), dir.canonicalize().unwrap());
        assert!(cmdline.contains("procpool-worker"), "{cmdline}");
        assert!(!cmdline.contains("procpool-fork-server"), "{cmdline}");
    }
    drop(pool);
    // The next workers see the environment and directory as they are now,
    // not as the last request to the server had them.
    let pool = Pool::new(1).unwrap();
    let (_, _, var, cwd, _) = apply_context(&pool, "PROCPOOL_TEST_LATE".into()).unwrap();
    assert_eq!(var, None);
    assert_eq!(cwd.canonicalize().unwrap(), before.canonicalize().unwrap());
    drop(pool);
    assert_no_children();
}

#[test]
fn forked_workers_take_the_cpu_affinity_of_the_thread_that_made_the_pool() {
    let _serial = serial();
    assert_eq!(await_fork_server(), Some(true), "workers are forked");
    // What this thread may run on (not `available_parallelism`, which a
    // cgroup's CPU quota lowers), and the first CPU of it.
    let ours = allowed_set();
    let count = libc_count(&ours);
    let first = (0..libc::CPU_SETSIZE as usize)
        .find(|&cpu| libc_isset(cpu, &ours))
        .expect("this thread may run on some CPU");
    let pinned = std::thread::spawn(move || {
        // SAFETY: `cpu_set_t` is plain bits; sched_setaffinity reads it.
        let set = unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(first, &mut one);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one)
        };
        assert_eq!(set, 0, "pinning to CPU {first}");
        let pool = Pool::new(1).unwrap();
        apply_allowed_cpus(&pool).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(pinned, 1);
    let pool = Pool::new(1).unwrap();
    let free = apply_allowed_cpus(&pool).unwrap();
    assert_eq!(free, count);
    drop(pool);
    assert_no_children();
}

#[test]
fn forked_workers_take_the_mask_and_limits_of_the_moment_and_a_raised_hard_limit_is_spawned() {
    let _serial = serial();
    assert_eq!(await_fork_server(), Some(true), "workers are forked");
    let server = fork_server().expect("a test binary runs a fork server");
    // All changed after init(), long after the server started.
    // SAFETY: umask only swaps the process's mask.
    let mask_before = unsafe { libc::umask(0o027) };
    let files = get_limit(libc::RLIMIT_NOFILE);
    let fewer_files = [files[0].min(files[1]).min(4096) - 1, files[1]];
    set_limit(libc::RLIMIT_NOFILE, fewer_files).unwrap();
    // A hard limit lowered (for good: only privilege raises it again).
    let [_, queue_max] = get_limit(libc::RLIMIT_MSGQUEUE);
    assert!(queue_max > 2, "a usable limit: {queue_max}");
    // (Unlimited on some machines: then any finite limit is lower.)
    let infinite = queue_max == libc::RLIM_INFINITY;
    let lowered = if infinite {
        [819_200, 819_200]
    } else {
        [queue_max - 2, queue_max - 2]
    };
    set_limit(libc::RLIMIT_MSGQUEUE, lowered).unwrap();

    let pool = Pool::new(2).unwrap();
    for _ in 0..4 {
        let (_, parent, mask, nofile, msgqueue) = apply_mask_and_limits(&pool).unwrap();
        assert_eq!(parent, server, "forked by the server");
        assert_eq!(mask, 0o027);
        assert_eq!(nofile, fewer_files);
        assert_eq!(msgqueue, lowered);
    }
    drop(pool);

    // SAFETY: as above.
    unsafe { libc::umask(mask_before) };
    set_limit(libc::RLIMIT_NOFILE, files).unwrap();
    let pool = Pool::new(1).unwrap();
    let (_, parent, mask, nofile, _) = apply_mask_and_limits(&pool).unwrap();
    assert_eq!(parent, server);
    assert_eq!(
        (mask, nofile),
        (mask_before, files),
        "the next workers: as they are now"
    );
    drop(pool);

    // A hard limit above the server's (those of init()): only a privileged
    // caller can raise one, and a forked worker could not take it, so the
    // worker is spawned by this process and inherits it.
    // (Above an unlimited server's there is nothing: raised back to it.)
    let raised = if infinite {
        [queue_max, queue_max]
    } else {
        [queue_max + 1, queue_max + 1]
    };
    match set_limit(libc::RLIMIT_MSGQUEUE, raised) {
        Ok(()) if infinite => {
            let pool = Pool::new(1).unwrap();
            let (_, parent, _, _, msgqueue) = apply_mask_and_limits(&pool).unwrap();
            assert_eq!(parent, server, "the server's own limit: forked");
            assert_eq!(msgqueue, raised);
            drop(pool);
        }
        Ok(()) => {
            let pool = Pool::new(1).unwrap();
            let (_, parent, _, _, msgqueue) = apply_mask_and_limits(&pool).unwrap();
            assert_eq!(parent, std::process::id(), "spawned, not forked");
            assert_eq!(msgqueue, raised);
            drop(pool);
            // Back to the server's: workers are forked again.
            set_limit(libc::RLIMIT_MSGQUEUE, [queue_max, queue_max]).unwrap();
            let pool = Pool::new(1).unwrap();
            let (_, parent, _, _, msgqueue) = apply_mask_and_limits(&pool).unwrap();
            assert_eq!(parent, server);
            assert_eq!(msgqueue, [queue_max, queue_max]);
            drop(pool);
        }
        // (Raising a hard limit takes CAP_SYS_RESOURCE, which containers
        // often drop even for root.)
        Err(errno) => assert!(
            errno == libc::EPERM && !has_capability(CAP_SYS_RESOURCE),
            "only a caller without CAP_SYS_RESOURCE may fail to raise a hard limit: \
             errno {errno}"
        ),
    }
    assert_no_children();
}
