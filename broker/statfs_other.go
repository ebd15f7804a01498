//go:build !(linux || darwin || freebsd)

package broker

// diskSpace is unknown on this platform: DescribeLogDirs reports -1.
func diskSpace(string) (total, usable int64) { return -1, -1 }
