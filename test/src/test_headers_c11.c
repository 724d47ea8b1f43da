#include <afe.h>
int main(void){return 0;}
