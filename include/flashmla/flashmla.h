// FlashMLA-C++: Multi-head Latent Attention kernels for NVIDIA Hopper, torch-free C++ API.
// Umbrella header.
#pragma once

#include "flashmla/dense_decode.h"
#include "flashmla/errors.h"
#include "flashmla/params.h"
#include "flashmla/reference.h"
#include "flashmla/types.h"
#include "flashmla/validate.h"
#include "flashmla/version.h"
