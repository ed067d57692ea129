from sparc.cli import main

main()
