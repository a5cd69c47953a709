// Context switch for x86-64 System V.
//
// void* goro_switch(void** save_sp, void* load_sp, void* arg)
//   Pushes the callee-saved registers (rbp, rbx, r12-r15) and the FP control
//   words (MXCSR and the x87 control word) on the current stack, stores the
//   stack pointer to *save_sp, loads load_sp, pops the same frame from it and
//   returns there with arg as the return value. A control word is loaded
//   only if it differs from the current one (rcx and r8 are scratch). Everything else is
//   caller-saved in the SysV ABI, so the C++ caller has already spilled it.
//
// void* goro_switch_known_fp(void** save_sp, void* load_sp, void* arg,
//                            uint64_t fp_words)
//   The same switch, for a caller that knows the control words in force:
//   fp_words is MXCSR in bits 0-31 and the x87 control word in bits 32-47.
//   Reading MXCSR (stmxcsr) is microcoded and costs about 5 ns on AMD Zen,
//   the largest single cost of a switch there; the scheduler context (g0)
//   never changes its control words, so switching away from it needs no
//   read. A value that is no real control word (all ones) forces the target's
//   words to be loaded: for a goroutine that exits, whose words are unknown
//   and are not needed again.
//
// void goro_trampoline()
//   First "return address" of a new context made by goro_make_context: calls
//   entry(arg, data) where entry is in r12 and data in r13 of the initial
//   frame, and arg is the value handed to goro_switch. entry never returns.
#if defined(__x86_64__)
// The frame both entry points build: the callee-saved registers, then 8
// bytes for the control words ([mxcsr|fpucw] at the stack pointer).
.macro  push_switch_frame
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
.endm

        .text
        .globl  goro_switch
        .type   goro_switch, @function
        .p2align 4
goro_switch:
        .cfi_startproc
        push_switch_frame
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movl    (%rsp), %ecx            // the control words we leave with
        movzwl  4(%rsp), %r8d
.Lswap_stacks:
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        // Loading a control word stalls the pipeline; almost every context
        // runs with the defaults, so load only the ones that differ.
        cmpl    (%rsp), %ecx
        je      1f
        ldmxcsr (%rsp)
1:      cmpw    4(%rsp), %r8w
        je      2f
        fldcw   4(%rsp)
2:      addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        movq    %rdx, %rax
        ret
        .cfi_endproc
        .size   goro_switch, .-goro_switch

        .globl  goro_switch_known_fp
        .type   goro_switch_known_fp, @function
        .p2align 4
goro_switch_known_fp:
        .cfi_startproc
        push_switch_frame
        movq    %rcx, (%rsp)            // [mxcsr|fpucw], as goro_switch stores them
        movq    %rcx, %r8
        shrq    $32, %r8
        movzwl  %r8w, %r8d              // the x87 word; ecx already holds MXCSR
        jmp     .Lswap_stacks           // the rest is goro_switch's
        .cfi_endproc
        .size   goro_switch_known_fp, .-goro_switch_known_fp

        .globl  goro_trampoline
        .type   goro_trampoline, @function
        .p2align 4
goro_trampoline:
        .cfi_startproc
        .cfi_undefined rip          // the outermost frame of a goroutine
        movq    %rax, %rdi
        movq    %r13, %rsi
        xorl    %ebp, %ebp
        callq   *%r12
        ud2
        .cfi_endproc
        .size   goro_trampoline, .-goro_trampoline
#endif
        .section .note.GNU-stack,"",@progbits
