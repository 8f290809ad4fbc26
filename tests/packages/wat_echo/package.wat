;; wat_echo: a silk task package written directly in WebAssembly text, with no TDL and no Rust.
;; It implements the guest ABI of docs/wasm-abi.md (version 1) by hand, as proof that the ABI is
;; language-neutral. scripts/build-packages assembles it into target/packages/wat_echo.wasm.
;;
;; Tasks:
;;   echo  returns its input frame unchanged (so N inputs give the same N outputs)
;;   fail  returns TdlError::Custom("wat_echo: intentional failure")
;;   any other name returns TdlError::TaskNotFound(name)
;; It exports its task list (`silk_package_tasks`, optional in the ABI). Type strings there are
;; free text for a non-Rust package: `echo` takes and returns any values, listed in its
;; one-value form.
;; It imports nothing: no WASI, no `silk` module.
(module
  (memory (export "memory") 1)

  ;; Bump allocator: the heap starts after the static data and never shrinks. `silk_free` is a
  ;; no-op, which the ABI allows: the host drops the whole instance after each task.
  (global $heap (mut i32) (i32.const 1024))

  (data (i32.const 16) "wat_echo")                     ;; package name, 8 bytes
  (data (i32.const 32) "echo")                         ;; 4 bytes
  (data (i32.const 48) "fail")                         ;; 4 bytes
  ;; MessagePack of TdlError::Custom("wat_echo: intentional failure"): {"Custom": "<29 bytes>"}
  (data (i32.const 64) "\81\a6Custom\bdwat_echo: intentional failure")  ;; 38 bytes
  ;; MessagePack prefix of TdlError::TaskNotFound(name): {"TaskNotFound": ...}
  (data (i32.const 112) "\81\acTaskNotFound")          ;; 14 bytes
  ;; The task list (JSON, docs/wasm-abi.md), 139 bytes
  (data (i32.const 256) "{\"version\":1,\"tasks\":[{\"name\":\"echo\",\"inputs\":[{\"name\":\"value\",\"type\":\"any\"}],\"outputs\":[\"any\"]},{\"name\":\"fail\",\"inputs\":[],\"outputs\":[]}]}")

  (func (export "silk_abi_version") (result i32)
    i32.const 1)

  (func $alloc (export "silk_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; address-space overflow: refuse
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (local.set $pages (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "silk_free") (param i32 i32))

  ;; Writes the (ptr, len) record of a result buffer.
  (func $record (param $out i32) (param $ptr i32) (param $len i32)
    (i32.store (local.get $out) (local.get $ptr))
    (i32.store offset=4 (local.get $out) (local.get $len)))

  (func (export "silk_package_name") (param $out i32)
    (call $record (local.get $out) (i32.const 16) (i32.const 8)))

  (func (export "silk_package_tasks") (param $out i32)
    (call $record (local.get $out) (i32.const 256) (i32.const 139)))

  ;; Whether the byte strings (a, alen) and (b, blen) are equal.
  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "silk_package_execute")
    (param $name i32) (param $name_len i32)
    (param $ctx i32) (param $ctx_len i32)
    (param $in i32) (param $in_len i32)
    (param $out i32) (result i32)
    (local $buf i32)
    ;; echo: copy the input frame into a new buffer and return it (status 0 = OK)
    (if (call $eq (local.get $name) (local.get $name_len) (i32.const 32) (i32.const 4))
      (then
        (local.set $buf (call $alloc (local.get $in_len)))
        (if (i32.eqz (local.get $buf)) (then unreachable))
        (memory.copy (local.get $buf) (local.get $in) (local.get $in_len))
        (call $record (local.get $out) (local.get $buf) (local.get $in_len))
        (return (i32.const 0))))
    ;; fail: a static MessagePack TdlError (status 1 = task error)
    (if (call $eq (local.get $name) (local.get $name_len) (i32.const 48) (i32.const 4))
      (then
        (call $record (local.get $out) (i32.const 64) (i32.const 38))
        (return (i32.const 1))))
    ;; anything else: TaskNotFound(name), the name as a MessagePack str32
    (local.set $buf (call $alloc (i32.add (local.get $name_len) (i32.const 19))))
    (if (i32.eqz (local.get $buf)) (then unreachable))
    (memory.copy (local.get $buf) (i32.const 112) (i32.const 14))
    (i32.store8 offset=14 (local.get $buf) (i32.const 0xdb))
    (i32.store8 offset=15 (local.get $buf) (i32.shr_u (local.get $name_len) (i32.const 24)))
    (i32.store8 offset=16 (local.get $buf) (i32.shr_u (local.get $name_len) (i32.const 16)))
    (i32.store8 offset=17 (local.get $buf) (i32.shr_u (local.get $name_len) (i32.const 8)))
    (i32.store8 offset=18 (local.get $buf) (local.get $name_len))
    (memory.copy (i32.add (local.get $buf) (i32.const 19)) (local.get $name) (local.get $name_len))
    (call $record (local.get $out) (local.get $buf) (i32.add (local.get $name_len) (i32.const 19)))
    (i32.const 1))
)
