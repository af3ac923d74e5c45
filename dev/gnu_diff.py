#!/usr/bin/env python3
"""Random differential run of `remex run` against GNU parallel (a dev tool,
not a test: it lists differences, some of them on purpose; see docs/cli.md).

    python3 dev/gnu_diff.py args SEED COUNT    # option mixes over ::: inputs
    python3 dev/gnu_diff.py stdin SEED COUNT   # reading options over stdin

Every command line runs with -k -j1 (no races) through target/debug/remex
and `parallel`; stdout and the exit status are compared. Known differences
left out of the vocabulary: {-N} past the inputs (GNU wraps), NUL in input
without -0, {##}/{0#} without --plus, an empty ::: source among several.
"""
import os, random, subprocess, sys

REMEX = os.path.join(os.path.dirname(__file__), '..', 'target', 'debug', 'remex')

ARGS_OPTS = [['--tag'], ['--tagstring', '{#}:'], ['-N2'], ['-n2'], ['-m'], ['-X'],
             ['--colsep', ','], ['--trim', 'lr'], ['-q'], ['-r'], ['--plus'], ['-v'],
             ['--dry-run'], ['--link'], ['-L2'], ['-l'], ['-N0'], ['--xargs'],
             ['--header', ':'], ['-I', '@@'], ['--max-args', '3'], ['-E', 'stop']]
ARGS_CMDS = ['echo {}', 'echo x{}x', 'echo {1} {2}', 'echo {.} {/} {//}', 'printf "%s|" {}',
             'echo {#}', 'echo {1.} {2/}', 'echo @@', 'echo {+.} {..}', 'echo "{}"', "echo '{}'"]
ARGS_WORDS = ['a', 'b c', 'd,e', 'f.g.h', '/x/y.z', '', "it's", 'q"r', '$HOME', '*', 'stop',
              '-n', 'a\\b', 'tab\there', ' sp ']

STDIN_OPTS = [['--plus'], ['--trim', 'l'], ['--trim', 'r'], ['--trim', 'n'], ['--colsep', '[,;]'],
              ['--colsep', ' +'], ['-d', ','], ['-0'], ['--header', ':'],
              ['--tagstring', '{1}-{#}'], ['--tag'], ['-E', 'END'], ['-r'], ['-N2'], ['--link'],
              ['--null'], ['-d', '\\t'], ['--arg-sep', ',,'], ['--seqreplace', '@'],
              ['--slotreplace', '%%']]
STDIN_CMDS = ['echo {}', 'echo {#} {%}', 'echo {1} {2} {3}',
              'echo {+/} {+.} {+..} {..} {...} {/..} {/...}',
              'echo {:2} {:1:2} {#a} {%c} {/a/x} {//a/x} {^a} {^^a} {,A} {,,A}',
              'echo {1/} {1//} {1/.} {1.}', 'echo {%} @ %%', 'printf "<%s>" {}']
STDIN_INPUTS = ['a.b.c\n/d/e.f\n', 'x,y;z\n1,2;3\n', 'h1,h2\nv1,v2\n', 'a\tb\nc\td\n',
                '  sp  \nEND\nafter\n', '\n\nq\n', 'abc\nbcd\n']


def run(prog, args, stdin):
    try:
        p = subprocess.run(prog + args, capture_output=True, timeout=20, input=stdin)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired:
        return 'timeout', b''


def main():
    mode, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    same = differ = 0
    for _ in range(count):
        stdin = b''
        if mode == 'args':
            opts = [x for o in rnd.sample(ARGS_OPTS, rnd.randint(0, 3)) for x in o]
            args = ['-k', '-j1'] + opts + [rnd.choice(ARGS_CMDS)]
            for _ in range(rnd.randint(1, 2)):
                args += [':::'] + rnd.sample(ARGS_WORDS, rnd.randint(1, 4))
        else:
            opts = [x for o in rnd.sample(STDIN_OPTS, rnd.randint(0, 3)) for x in o]
            args = ['-k', '-j1'] + opts + [rnd.choice(STDIN_CMDS)]
            stdin = rnd.choice(STDIN_INPUTS).encode()
            if rnd.random() < 0.4:
                args += [',,' if ',,' in opts else ':::'] + rnd.sample(
                    ['a.b', 'x,y', 'c d', '', ' z ', 'END', '/p/q.r.s'], rnd.randint(1, 3))
                if rnd.random() < 0.3:
                    stdin = b''
        r = run([REMEX, 'run', '--no-bar'], args, stdin)
        g = run(['parallel', '--will-cite'], args, stdin)
        if r == g:
            same += 1
        else:
            differ += 1
            print('DIFF', args, repr(stdin), '\n  remex', r, '\n  gnu  ', g)
    print({'same': same, 'differ': differ})


if __name__ == '__main__':
    main()
