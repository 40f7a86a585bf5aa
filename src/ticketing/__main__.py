from ticketing.cli import main

main()
