// Which Linux thread runs this code, and how much CPU a thread of this process has used: for
// `ctl stats` (the forwarding thread's and the I/O threads' CPU) and tests.
import { readFileSync, readlinkSync } from 'node:fs';

/** The calling thread's Linux thread id (/proc/thread-self names it; a sync readlink runs on
 *  the calling thread). 0 where /proc has no thread-self. */
export function threadId(): number {
  try { return Number(readlinkSync('/proc/thread-self').split('/')[2]) || 0; } catch { return 0; }
}

/** CPU time (user + system) thread `tid` of this process used so far, in ms (schedstat's
 *  nanoseconds when the kernel keeps them, else stat's clock ticks); -1 if it is gone. */
export function threadCpuMs(tid: number): number {
  try { return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6; } catch { /* no schedstat */ }
  try {
    const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 on: utime is 14, stime 15
    return (Number(f[11]) + Number(f[12])) * 10; // clock ticks: USER_HZ is 100 on Linux
  } catch { return -1; }
}
