package crypto

import (
	"runtime"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestCPUFeaturesAgreeWithRuntime cross-checks cpuid's reading against the
// Go runtime's own detection, which chooses the AES implementation.
func TestCPUFeaturesAgreeWithRuntime(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86 features")
	}
	f := CPUFeatures()
	if f.AESNI != cpu.X86.HasAES || f.PCLMULQDQ != cpu.X86.HasPCLMULQDQ || f.AVX2 != cpu.X86.HasAVX2 {
		t.Fatalf("cpuid %+v disagrees with runtime (aes=%v pclmulqdq=%v avx2=%v)", f, cpu.X86.HasAES, cpu.X86.HasPCLMULQDQ, cpu.X86.HasAVX2)
	}
}
