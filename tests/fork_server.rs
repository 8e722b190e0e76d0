//! Workers are forked by the fork server that `init()` launches: each starts
//! from this program as it was at `init()`, yet sees the parent's
//! environment, working directory and CPU affinity as they are when the
//! worker starts (never those of an earlier start), and is shown as a worker
//! in `ps`.

mod support;

use std::path::PathBuf;

use procpool::{pool_task, Pool};
use support::{assert_no_children, children_of, fork_server, serial};

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
    let server = fork_server().expect("a test binary runs a fork server");
    // Both set after init(), long after the server started.
    std::env::set_var("PROCPOOL_TEST_LATE", "set after init");
    let dir = std::env::temp_dir().join(format!("procpool-fork-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forked_workers_take_the_cpu_affinity_of_the_thread_that_made_the_pool() {
    let _serial = serial();
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
