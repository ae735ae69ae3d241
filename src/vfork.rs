//! The one place a process is created: `clone(CLONE_VM | CLONE_VFORK)`
//! and `execve`, as libc's `posix_spawn` does, but without what it adds on
//! top. musl's `posix_spawn` holds a process-wide lock from the clone until
//! the child has called `execve`, so every job or check starting at the same
//! moment (checks with the same interval always do) queued behind the
//! others, a futex sleep and wake each; and it makes a pipe per start only
//! to learn whether `execve` failed. Here the child shares our memory while
//! we are suspended, so it leaves its `execve` error where we read it once
//! we resume, and no lock is taken at all.
//!
//! The child runs on a small stack of its own in our address space,
//! until `execve`: it only makes system calls (no allocation, no lock). Every
//! signal is blocked in every thread of ours (the signal thread reads them
//! from a signalfd) and no handler is installed, so nothing of ours can run
//! in the child either.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::RawFd;
use std::sync::Mutex;

use nix::libc;

/// A NULL-terminated array of pointers to C strings (argv, envp), valid as
/// long as the strings it points into.
pub struct CArray(Vec<*const c_char>);

// SAFETY: the pointers refer to heap buffers that the owner of a `CArray`
// keeps alongside it and never mutates; moving them to another thread
// moves nothing they point to.
unsafe impl Send for CArray {}

// SAFETY: as for Send: nothing is ever written through or to the pointers
// after `new`, so threads sharing one (the checks' shared environment) only
// read what does not change.
unsafe impl Sync for CArray {}

impl CArray {
    pub fn new<'a>(strings: impl Iterator<Item = &'a CStr>) -> CArray {
        let mut ptrs: Vec<*const c_char> = strings.map(CStr::as_ptr).collect();
        ptrs.push(std::ptr::null());
        CArray(ptrs)
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.0.as_ptr()
    }
}

/// What the child needs, read by it from our (suspended) memory.
#[repr(C)]
struct Args {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// Descriptors to become the child's 0, 1 and 2; -1 keeps ours.
    fds: [c_int; 3],
    /// Set by the child when it cannot start: the errno.
    err: c_int,
}

/// Enough for the few system calls the child makes before `execve`.
#[repr(C, align(16))]
struct Stack([u8; 8192]);

/// Children's stacks, kept between starts. On the heap, not in the
/// caller's frame: an array there would push the frames below it a page
/// or two deeper into every runner's and checker's stack, and those pages
/// stay resident. Kept rather than freed: musl gives an 8 KiB block back to
/// the kernel when it is freed, and the mmap and munmap cost more than the
/// rest of a start. Left uninitialised: a child touches only the little
/// it uses.
struct Stacks;

static STACKS: Mutex<Vec<Box<MaybeUninit<Stack>>>> = Mutex::new(Vec::new());

/// More are made while more starts run at once, but no more are kept.
const KEEP_STACKS: usize = 8;

impl Stacks {
    fn take() -> Box<MaybeUninit<Stack>> {
        let kept = STACKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        kept.unwrap_or_else(Box::new_uninit)
    }

    fn give_back(stack: Box<MaybeUninit<Stack>>) {
        let mut kept = STACKS.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEEP_STACKS {
            kept.push(stack);
        }
    }
}

/// Start `path` with `argv` and `envp` (which the caller built from the
/// same strings) in a new process group, with `fds` as its stdin, stdout
/// and stderr (-1: inherit ours), every signal unblocked and SIGPIPE at its
/// default. Returns the pid once the child has called `execve`; the error
/// of `execve` (or of the set-up before it) if that failed, the failed
/// child reaped.
///
/// SAFETY: the pointers inside `argv` and `envp` must be valid C strings
/// for the duration of the call; `fds` must be open descriptors above 2.
pub unsafe fn spawn(path: &CStr, argv: &CArray, envp: &CArray, fds: [RawFd; 3]) -> io::Result<u32> {
    let mut args = Args {
        path: path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        fds,
        err: 0,
    };
    let mut stack = Stacks::take();
    let top = stack
        .as_mut_ptr()
        .cast::<u8>()
        .add(size_of::<Stack>())
        .cast::<c_void>();
    // SIGCHLD as the exit signal: reaped like any child. CLONE_VFORK: we
    // resume only once the child has exec'd or exited, so `stack` and
    // `args` outlive its use of them.
    let pid = libc::clone(
        child,
        top,
        libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
        (&raw mut args).cast::<c_void>(),
    );
    let failed = (pid < 0).then(io::Error::last_os_error);
    // The child has exec'd or exited: its stack is free again.
    Stacks::give_back(stack);
    if let Some(e) = failed {
        return Err(e);
    }
    // The child wrote through our memory while we were suspended; the
    // compiler cannot know that.
    let err = std::ptr::read_volatile(&raw const args.err);
    if err != 0 {
        // Not left for the reaper: nobody will ever claim this exit.
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(pid as u32)
}

/// The child, until `execve`. Only system calls: it runs on our memory.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Args` of `spawn`, whose caller is suspended
    // until we exec or exit.
    unsafe {
        let args = arg.cast::<Args>();
        for (target, fd) in (*args).fds.iter().enumerate() {
            if *fd >= 0 && libc::dup2(*fd, target as c_int) < 0 {
                fail(args);
            }
        }
        // Its own process group: signals go to the group.
        if libc::setpgid(0, 0) < 0 {
            fail(args);
        }
        // The Rust runtime ignores SIGPIPE, and an ignored signal stays
        // ignored across execve; handlers we have none.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        if libc::sigaction(libc::SIGPIPE, &dfl, std::ptr::null_mut()) < 0 {
            fail(args);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            fail(args);
        }
        libc::execve((*args).path, (*args).argv, (*args).envp);
        fail(args)
    }
}

/// Leave the errno for the parent and exit as a shell does when a program
/// cannot be run.
unsafe fn fail(args: *mut Args) -> ! {
    let e = *libc::__errno_location();
    std::ptr::write_volatile(&raw mut (*args).err, if e == 0 { libc::EINVAL } else { e });
    libc::_exit(127)
}
