/* placeholder so the build has a core source; replaced by the core work */
#include "internal.h"
