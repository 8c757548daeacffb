/** Whether a process with this pid exists (ours counts; one we may not signal exists too). */
export const processAlive = (pid: number): boolean => {
  if (pid === process.pid) return true
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === "EPERM" }
}
