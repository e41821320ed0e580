# flusso — PGXS build.
#
#   make && make install            build and install against pg_config
#   make installcheck               pg_regress against a running server
#   make WERROR=1                   what CI builds: warnings are errors
#   make layers                     no circle between source files, folders
#                                   call downward only (test/layers.py)
#
EXTENSION = flusso
MODULE_big = flusso
# src/ has a folder per stage or concern (README.md, "Source layout")
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*/*.c)))
DATA = $(sort $(wildcard sql/flusso--*.sql))

REGRESS = $(sort $(basename $(notdir $(filter-out sql/flusso--%,$(wildcard sql/*.sql)))))
REGRESS_OPTS = --inputdir=. --outputdir=build/regress

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)

PG_CPPFLAGS = -Isrc $(shell pkg-config --cflags libcurl json-c libcrypto 2>/dev/null)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif
SHLIB_LINK = $(shell pkg-config --libs libcurl json-c libcrypto 2>/dev/null || echo -lcurl -ljson-c -lcrypto)

EXTRA_CLEAN = build $(OBJS:.o=.d)

# No LLVM bitcode: it only serves JIT inlining and needs clang at build time.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: layers
layers:
	python3 test/layers.py

installcheck: | build/regress
build/regress:
	mkdir -p $@

-include $(OBJS:.o=.d)
