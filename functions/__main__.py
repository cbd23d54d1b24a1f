from functions.main import main

main()
