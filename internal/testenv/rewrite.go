package testenv

import "os"

// RewriteExecutable writes the executable from to to (the same path
// rewrites it in place) with write(2), through a temporary file renamed
// into place. A benchmark that times processes runs every binary it
// compares from a file written this one way: the linker writes its output
// through a memory mapping, and such a file sits in the page cache in
// small pages, so each exec of it faults its text in page by page. On a
// machine with shadow paging (a Firecracker guest, 2026-12-06) a process
// run from the linker's output took 0.5-6 ms longer than from the same
// bytes rewritten (cp-gate 0.5 ms, sdkbare 3.4, cp-llm 6.3), more than
// the differences the benchmarks measure.
func RewriteExecutable(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}
