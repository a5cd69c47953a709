// Context switch for AArch64 (AAPCS64).
//
// void* goro_switch(void** save_sp, void* load_sp, void* arg)
//   Saves x19-x28, the frame pointer x29, the link register x30, d8-d15 and
//   FPCR on the current stack, stores sp to *save_sp, loads load_sp, restores
//   the same frame and returns to the restored x30 with arg in x0.
//
// void* goro_switch_known_fp(void** save_sp, void* load_sp, void* arg,
//                            uint64_t fp_words)
//   goro_switch under another name: reading FPCR is cheap here, so the
//   caller's knowledge of the control words (x3) is not used.
//
// void goro_trampoline()
//   First x30 of a new context: calls entry(arg, data), entry in x19 and data
//   in x20 of the initial frame. entry never returns.
#if defined(__aarch64__)
        .text
        .globl  goro_switch
        .type   goro_switch, %function
        .p2align 4
goro_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
        mov     sp, x1
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        mov     x0, x2
        ret
        .size   goro_switch, .-goro_switch

        .globl  goro_switch_known_fp
        .type   goro_switch_known_fp, %function
        .p2align 4
goro_switch_known_fp:
        b       goro_switch
        .size   goro_switch_known_fp, .-goro_switch_known_fp

        .globl  goro_trampoline
        .type   goro_trampoline, %function
        .p2align 4
goro_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x1, x20
        mov     x29, #0
        blr     x19
        brk     #0
        .cfi_endproc
        .size   goro_trampoline, .-goro_trampoline
#endif
        .section .note.GNU-stack,"",%progbits
