package crypto

import "github.com/klauspost/cpuid/v2"

// CPUFeatureReport says which of the CPU features that speed up kmsd's
// cryptography this machine has. Without AES-NI, Go's AES is a slower
// constant-time software implementation: correct, not fast.
type CPUFeatureReport struct {
	Brand     string `json:"brand"`
	AESNI     bool   `json:"aesni"`
	PCLMULQDQ bool   `json:"pclmulqdq"`
	VAES      bool   `json:"vaes"`
	VPCLMULQD bool   `json:"vpclmulqdq"`
	AVX2      bool   `json:"avx2"`
	AVX512F   bool   `json:"avx512f"`
	SHANI     bool   `json:"sha_ni"`
}

// CPUFeatures reads the CPU's features.
func CPUFeatures() CPUFeatureReport {
	c := cpuid.CPU
	return CPUFeatureReport{
		Brand:     c.BrandName,
		AESNI:     c.Supports(cpuid.AESNI),
		PCLMULQDQ: c.Supports(cpuid.CLMUL),
		VAES:      c.Supports(cpuid.VAES),
		VPCLMULQD: c.Supports(cpuid.VPCLMULQDQ),
		AVX2:      c.Supports(cpuid.AVX2),
		AVX512F:   c.Supports(cpuid.AVX512F),
		SHANI:     c.Supports(cpuid.SHA),
	}
}

// Flags returns the features by name (the JSON names), for metrics.
func (r CPUFeatureReport) Flags() map[string]bool {
	return map[string]bool{
		"aesni": r.AESNI, "pclmulqdq": r.PCLMULQDQ, "vaes": r.VAES, "vpclmulqdq": r.VPCLMULQD,
		"avx2": r.AVX2, "avx512f": r.AVX512F, "sha_ni": r.SHANI,
	}
}
