/* fp8.h — being written (issue 2). */
#ifndef FP8_H
#define FP8_H
#endif
